package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return loadConfig(args, func(k string) string { return env[k] }, fs)
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keygate.yaml")
	os.WriteFile(file, []byte("grpc_addr: \":1111\"\nhttp_addr: \":2222\"\nadmin_addr: \"127.0.0.1:3333\"\nflush_interval: 30s\ntrusted_hops: 1\n"), 0o600)
	cfg, err := load(t, []string{"--config", file, "--http-addr", ":4444"},
		map[string]string{"KEYGATE_ADMIN_ADDR": "127.0.0.1:5555", "KEYGATE_HTTP_ADDR": ":6666"})
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.GRPCAddr = ":1111"           // file
	want.HTTPAddr = ":4444"           // flag beats env and file
	want.AdminAddr = "127.0.0.1:5555" // env beats file
	want.FlushInterval = 30 * time.Second
	want.TrustedHops = 1
	want.configFile = file
	if cfg != want {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("grpc_adr: \":1\"\n"), 0o600)
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
		{[]string{"--grpc-addr", "nonsense"}, nil, "--grpc-addr"},
		{nil, map[string]string{"KEYGATE_FLUSH_INTERVAL": "often"}, "KEYGATE_FLUSH_INTERVAL"},
		{[]string{"--config", unknown}, nil, `unknown field "grpc_adr"`},
		{[]string{"--default-methods", "apikey,magic"}, nil, "--default-methods"},
		{[]string{"--source", "etcd"}, nil, "--source"},
		{[]string{"--trusted-hops", "-1"}, nil, "--trusted-hops"},
		{[]string{"--trusted-proxies", "10.0.0.0/8,bogus"}, nil, "--trusted-proxies"},
		{[]string{"--hmac-window", "301s"}, nil, "--hmac-window"},
		{[]string{"--hmac-label", "Sig1"}, nil, "--hmac-label"},
		{[]string{"--replay-cache-size", "10"}, nil, "--replay-cache-size"},
		{[]string{"--jwks-timeout", "0s"}, nil, "--jwks-timeout"},
		{[]string{"--jwt-cache-size", "-1"}, nil, "--jwt-cache-size"},
		{[]string{"stray"}, nil, `unexpected argument "stray"`},
	}
	for _, c := range cases {
		_, err := load(t, c.args, c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: error %v, want it to name %s", c.args, c.env, err, c.want)
		}
	}
}

func TestServeHelpListsEverySetting(t *testing.T) {
	var b strings.Builder
	printServeFlags(&b)
	for _, want := range []string{"--grpc-addr", "KEYGATE_GRPC_ADDR", "--admin-token-file", "--lock-timeout", "--config FILE", "(default :9191)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
}
