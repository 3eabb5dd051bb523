package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/credentials"
	"sigs.k8s.io/yaml"
)

// Config is everything `keygate serve` can be told. Precedence: built-in
// defaults < YAML file (--config) < KEYGATE_* environment < flags.
type Config struct {
	GRPCAddr        string        `json:"grpc_addr" flag:"grpc-addr" usage:"gRPC listener (ext_authz Check, health, reflection)"`
	GRPCSocket      string        `json:"grpc_socket" flag:"grpc-socket" usage:"also serve gRPC on this unix socket"`
	HTTPAddr        string        `json:"http_addr" flag:"http-addr" usage:"HTTP listener (/check for nginx, Caddy, Traefik and Envoy http_service; /healthz, /readyz, /metrics)"`
	AdminAddr       string        `json:"admin_addr" flag:"admin-addr" usage:"admin sync API listener; keep it on loopback or behind a NetworkPolicy"`
	DataDir         string        `json:"data_dir" flag:"data-dir" usage:"directory of the bbolt store keygate.db (and dev-default secrets)"`
	AdminTokenFile  string        `json:"admin_token_file" flag:"admin-token-file" usage:"file holding the admin bearer token (default: <data-dir>/admin.token, generated if missing; or set KEYGATE_ADMIN_TOKEN)"`
	MasterKeyFile   string        `json:"master_key_file" flag:"master-key-file" usage:"32-byte key (raw or base64) encrypting secrets at rest (default: <data-dir>/master.key, generated if missing)"`
	LogLevel        string        `json:"log_level" flag:"log-level" usage:"debug, info, warn or error"`
	LogFormat       string        `json:"log_format" flag:"log-format" usage:"json or console"`
	Source          string        `json:"source" flag:"source" usage:"source of truth: local (the bbolt file)"`
	EtcdEndpoints   string        `json:"etcd_endpoints" flag:"etcd-endpoints" usage:"etcd endpoints for --source etcd (not available in this version)"`
	EtcdPrefix      string        `json:"etcd_prefix" flag:"etcd-prefix" usage:"etcd key prefix for --source etcd"`
	DefaultMethods  string        `json:"default_methods" flag:"default-methods" usage:"methods accepted on routes without keygate.methods"`
	DefaultScopes   string        `json:"default_scopes" flag:"default-scopes" usage:"scopes required on routes without keygate.scopes (comma-separated)"`
	TrustedProxies  string        `json:"trusted_proxies" flag:"trusted-proxies" usage:"HTTP check mode: comma-separated CIDRs of proxies whose X-Real-IP (or X-Forwarded-For with --trusted-hops) keygate believes (default: loopback only)"`
	TrustedHops     int           `json:"trusted_hops" flag:"trusted-hops" usage:"X-Forwarded-For hops to trust for the source IP (0: the peer address Envoy saw)"`
	FlushInterval   time.Duration `json:"flush_interval" flag:"flush-interval" usage:"how often last-used times are written to the store"`
	LockTimeout     time.Duration `json:"lock_timeout" flag:"lock-timeout" usage:"how long to wait while another process holds the store file"`
	ShutdownTimeout time.Duration `json:"shutdown_timeout" flag:"shutdown-timeout" usage:"how long in-flight Checks may take to finish on SIGTERM"`
	MaxRequestBytes int           `json:"max_request_bytes" flag:"max-request-bytes" usage:"largest CheckRequest accepted over gRPC, and largest body of an HTTP check"`
	MaxAdminBody    int64         `json:"max_admin_body" flag:"max-admin-body" usage:"largest admin API request body"`
	Pprof           string        `json:"pprof" flag:"pprof" usage:"serve Go's /debug/pprof/ on the HTTP listener: true or false"`
	JWTCacheSize    int           `json:"jwt_cache_size" flag:"jwt-cache-size" usage:"verified JWTs kept in memory (by SHA-256 of the token, until exp or the next store change); 0 turns the cache off"`
	JWKSTimeout     time.Duration `json:"jwks_timeout" flag:"jwks-timeout" usage:"timeout of one fetch of an issuer's jwks_uri"`
	JWKSMinRefresh  time.Duration `json:"jwks_min_refresh" flag:"jwks-min-refresh" usage:"least time between two fetches of a jwks_uri caused by tokens with an unknown kid"`
	HMACWindow      time.Duration `json:"hmac_window" flag:"hmac-window" usage:"how far a signature's created time (RFC 9421) or X-Timestamp (legacy) may be from now, either way (at most 300s)"`
	HMACLabel       string        `json:"hmac_label" flag:"hmac-label" usage:"the RFC 9421 signature label keygate verifies (default: the first signature whose keyid is an HMAC key of the store)"`
	ReplayCacheSize int           `json:"replay_cache_size" flag:"replay-cache-size" usage:"nonces and signatures remembered against replay; when it is full of live entries, signed requests are denied"`

	// set by load: which fields were given explicitly (for error messages)
	configFile string
}

// DefaultConfig is what keygate runs with when told nothing.
func DefaultConfig() Config {
	return Config{
		GRPCAddr:        ":9191",
		HTTPAddr:        ":9192",
		AdminAddr:       "127.0.0.1:9193",
		DataDir:         "./data",
		LogLevel:        "info",
		LogFormat:       "json",
		Source:          "local",
		EtcdPrefix:      "/keygate/",
		DefaultMethods:  "apikey,hmac,jwt",
		FlushInterval:   10 * time.Second,
		LockTimeout:     10 * time.Second,
		ShutdownTimeout: 15 * time.Second,
		MaxRequestBytes: 4 << 20,
		MaxAdminBody:    64 << 20,
		JWTCacheSize:    credentials.DefaultJWTCacheSize,
		JWKSTimeout:     5 * time.Second,
		JWKSMinRefresh:  30 * time.Second,
		HMACWindow:      credentials.DefaultHMACWindow,
		ReplayCacheSize: credentials.DefaultReplayCacheSize,
	}
}

// loadConfig builds the config of `keygate serve` from args and env.
func loadConfig(args []string, env func(string) string, fs *flag.FlagSet) (Config, error) {
	cfg := DefaultConfig()
	// The config file may come from a flag or the environment; find it first.
	cfgFile := env("KEYGATE_CONFIG")
	for i, a := range args {
		if a == "--config" || a == "-config" {
			if i+1 < len(args) {
				cfgFile = args[i+1]
			}
		} else if v, ok := strings.CutPrefix(a, "--config="); ok {
			cfgFile = v
		} else if v, ok := strings.CutPrefix(a, "-config="); ok {
			cfgFile = v
		}
	}
	if cfgFile != "" {
		data, err := os.ReadFile(cfgFile)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		js, err := yaml.YAMLToJSON(data)
		if err != nil {
			return cfg, fmt.Errorf("config %s: %w", cfgFile, err)
		}
		var fc fileConfig
		if err := credentials.DecodeStrict(js, &fc); err != nil {
			return cfg, fmt.Errorf("config %s: field %s: %s", cfgFile, credentials.ErrorField(err), credentials.ErrorMessage(err))
		}
		if err := fc.apply(&cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", cfgFile, err)
		}
		cfg.configFile = cfgFile
	}
	// Environment, then flags.
	v := reflect.ValueOf(&cfg).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("flag")
		if name == "" {
			continue
		}
		envName := "KEYGATE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if s := env(envName); s != "" {
			if err := setField(v.Field(i), s); err != nil {
				return cfg, fmt.Errorf("%s: %v", envName, err)
			}
		}
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("flag")
		if name == "" {
			continue
		}
		fs.Var(fieldValue{v.Field(i)}, name, f.Tag.Get("usage"))
	}
	fs.String("config", cfgFile, "optional YAML config file (keys as in docs/configuration.md); flags and KEYGATE_* win over it")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, cfg.Validate()
}

// printServeFlags prints `keygate serve --help`: every setting with its
// flag, environment variable and default, in the order of Config.
func printServeFlags(w io.Writer) {
	fmt.Fprint(w, serveHelp)
	def := reflect.ValueOf(DefaultConfig())
	t := def.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("flag")
		if name == "" {
			continue
		}
		env := "KEYGATE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		fmt.Fprintf(w, "  --%s %s  (%s)\n", name, placeholder(def.Field(i)), env)
		d := fmt.Sprint(def.Field(i).Interface())
		if d == "" || d == "0" || d == "0s" {
			fmt.Fprintf(w, "        %s\n", f.Tag.Get("usage"))
		} else {
			fmt.Fprintf(w, "        %s (default %s)\n", f.Tag.Get("usage"), d)
		}
	}
	fmt.Fprintf(w, "  --config FILE  (KEYGATE_CONFIG)\n        optional YAML file of these settings (keys with underscores, e.g. grpc_addr)\n")
}

func placeholder(v reflect.Value) string {
	switch v.Interface().(type) {
	case time.Duration:
		return "DURATION"
	case int, int64:
		return "N"
	}
	return "VALUE"
}

// fileConfig is Config as a YAML file spells it (durations as strings).
type fileConfig map[string]any

func (fc fileConfig) apply(cfg *Config) error {
	v := reflect.ValueOf(cfg).Elem()
	t := v.Type()
	known := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		if j := t.Field(i).Tag.Get("json"); j != "" {
			known[j] = i
		}
	}
	for k, val := range fc {
		i, ok := known[k]
		if !ok {
			return fmt.Errorf("unknown field %q", k)
		}
		s := fmt.Sprint(val)
		if f, ok := val.(float64); ok {
			s = strconv.FormatFloat(f, 'f', -1, 64)
		}
		if err := setField(v.Field(i), s); err != nil {
			return fmt.Errorf("field %s: %v", k, err)
		}
	}
	return nil
}

type fieldValue struct{ v reflect.Value }

func (f fieldValue) String() string {
	if !f.v.IsValid() {
		return ""
	}
	return fmt.Sprint(f.v.Interface())
}
func (f fieldValue) Set(s string) error { return setField(f.v, s) }

func setField(v reflect.Value, s string) error {
	switch v.Interface().(type) {
	case string:
		v.SetString(s)
	case int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		v.SetInt(int64(n))
	case int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		v.SetInt(n)
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 10s", s)
		}
		v.SetInt(int64(d))
	default:
		return errors.New("unsupported setting type")
	}
	return nil
}

// Validate checks the config and names the bad field.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("invalid --%s: %s", field, fmt.Sprintf(format, args...))
	}
	for _, a := range []struct{ name, v string }{{"grpc-addr", c.GRPCAddr}, {"http-addr", c.HTTPAddr}, {"admin-addr", c.AdminAddr}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return bad(a.name, "%q is not host:port", a.v)
		}
	}
	if c.DataDir == "" {
		return bad("data-dir", "must not be empty")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("log-level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		return bad("log-format", "%q is not json or console", c.LogFormat)
	}
	switch c.Source {
	case "local":
	case "etcd":
		return bad("source", "etcd fleet mode is not available in this version (use local)")
	default:
		return bad("source", "%q is not local or etcd", c.Source)
	}
	if _, err := credentials.ParseMethods(c.DefaultMethods); err != nil {
		return bad("default-methods", "%v", err)
	}
	if c.DefaultScopes != "" {
		if _, err := credentials.ParsePolicy(map[string]string{credentials.ExtScopes: c.DefaultScopes}, credentials.Policy{}); err != nil {
			return bad("default-scopes", "%v", err)
		}
	}
	if _, err := c.trustedProxies(); err != nil {
		return bad("trusted-proxies", "%v", err)
	}
	if c.TrustedHops < 0 || c.TrustedHops > 10 {
		return bad("trusted-hops", "must be 0-10")
	}
	if c.FlushInterval < time.Second {
		return bad("flush-interval", "must be at least 1s")
	}
	if c.LockTimeout < 0 || c.LockTimeout > 10*time.Minute {
		return bad("lock-timeout", "must be between 0s and 10m")
	}
	if c.ShutdownTimeout <= 0 {
		return bad("shutdown-timeout", "must be positive")
	}
	if c.MaxRequestBytes < 64<<10 || c.MaxRequestBytes > 64<<20 {
		return bad("max-request-bytes", "must be between 64 KiB and 64 MiB")
	}
	if c.Pprof != "" && c.Pprof != "true" && c.Pprof != "false" {
		return bad("pprof", "%q is not true or false", c.Pprof)
	}
	if c.MaxAdminBody < 1<<20 {
		return bad("max-admin-body", "must be at least 1 MiB")
	}
	if c.JWTCacheSize < 0 || c.JWTCacheSize > 10_000_000 {
		return bad("jwt-cache-size", "must be between 0 and 10000000")
	}
	if c.JWKSTimeout < 100*time.Millisecond || c.JWKSTimeout > time.Minute {
		return bad("jwks-timeout", "must be between 100ms and 1m")
	}
	if c.JWKSMinRefresh < time.Second || c.JWKSMinRefresh > time.Hour {
		return bad("jwks-min-refresh", "must be between 1s and 1h")
	}
	if c.HMACWindow < time.Second || c.HMACWindow > credentials.MaxHMACWindow {
		return bad("hmac-window", "must be between 1s and %v", credentials.MaxHMACWindow)
	}
	if c.HMACLabel != "" && !validSFKey(c.HMACLabel) {
		return bad("hmac-label", "%q is not a signature label (lower-case letters, digits, _-.*; starting with a letter or *)", c.HMACLabel)
	}
	if c.ReplayCacheSize < 1024 || c.ReplayCacheSize > 100_000_000 {
		return bad("replay-cache-size", "must be between 1024 and 100000000")
	}
	return nil
}

// DefaultPolicy returns the server policy of routes without keygate.* settings.
func (c *Config) DefaultPolicy() credentials.Policy {
	m, _ := credentials.ParseMethods(c.DefaultMethods)
	return credentials.Policy{Methods: m, Scopes: c.DefaultScopes}
}

func (c *Config) tokenFile() string {
	if c.AdminTokenFile != "" {
		return c.AdminTokenFile
	}
	return filepath.Join(c.DataDir, "admin.token")
}

func (c *Config) masterKeyFile() string {
	if c.MasterKeyFile != "" {
		return c.MasterKeyFile
	}
	return filepath.Join(c.DataDir, "master.key")
}

// validSFKey reports whether s is an RFC 8941 dictionary key (a
// Signature-Input label).
func validSFKey(s string) bool {
	if s == "" || len(s) > 64 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] == '*') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*') {
			return false
		}
	}
	return true
}

// trustedProxies parses --trusted-proxies (nil: extauthz's default,
// loopback only).
func (c *Config) trustedProxies() ([]netip.Prefix, error) {
	if strings.TrimSpace(c.TrustedProxies) == "" {
		return nil, nil
	}
	var out []netip.Prefix
	for item := range strings.SplitSeq(c.TrustedProxies, ",") {
		p, err := credentials.ParseCIDR(strings.TrimSpace(item))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
