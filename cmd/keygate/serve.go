package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keygate/keygate/admin"
	"github.com/keygate/keygate/bolt"
	"github.com/keygate/keygate/credentials"
	"github.com/keygate/keygate/extauthz"
	"github.com/keygate/keygate/internal/gcgoal"
	"github.com/keygate/keygate/jwks"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

const authzService = "envoy.service.auth.v3.Authorization"

// minHeapGoal is the smallest heap goal keygate lets the collector aim
// for (unless GOGC is set): 64 MiB of room for per-request garbage.
const minHeapGoal = 64 << 20

// storeRef is the Checker's view of the store: nil until it is open and
// loaded, so Checks before that cannot be allowed.
type storeRef struct{ p atomic.Pointer[bolt.Store] }

func (r *storeRef) Index() *credentials.Index {
	if s := r.p.Load(); s != nil {
		return s.Index()
	}
	return nil
}

func newLogger(cfg *Config, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "ts"
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if cfg.LogFormat == "console" {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		enc = zapcore.NewJSONEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)), nil
}

// serve runs `keygate serve` until ctx is done or SIGTERM/SIGINT arrives.
func serve(ctx context.Context, args []string, env func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("keygate serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printServeFlags(stderr) }
	cfg, err := loadConfig(args, env, fs)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "keygate serve: %v\n", err)
		return 2
	}
	log, err := newLogger(&cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "keygate serve: %v\n", err)
		return 2
	}
	defer log.Sync()
	if err := runServer(ctx, &cfg, env, log); err != nil {
		log.Error("keygate stopped", zap.Error(err))
		return 1
	}
	return 0
}

func runServer(ctx context.Context, cfg *Config, env func(string) string, log *zap.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("starting keygate", zap.String("version", version), zap.String("data_dir", cfg.DataDir), zap.String("config", cfg.configFile))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	token, tokenSrc, created, err := adminToken(cfg, env)
	if err != nil {
		return err
	}
	if created {
		log.Warn("generated a dev admin token; use --admin-token-file or KEYGATE_ADMIN_TOKEN in production", zap.String("path", tokenSrc))
	} else {
		log.Info("admin token loaded", zap.String("from", tokenSrc))
	}
	mk, mkPath, created, err := masterKey(cfg)
	if err != nil {
		return err
	} else if created {
		log.Warn("generated a dev master key; use --master-key-file in production", zap.String("path", mkPath))
	}

	// Listen first, so a port clash fails fast and probes get answers
	// (not ready) while a large store loads.
	grpcLn, err := listen(log, "grpc", cfg.GRPCAddr)
	if err != nil {
		return err
	}
	var sockLn net.Listener
	if cfg.GRPCSocket != "" {
		if fi, err := os.Lstat(cfg.GRPCSocket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(cfg.GRPCSocket) // stale socket of an earlier run
		}
		if sockLn, err = net.Listen("unix", cfg.GRPCSocket); err != nil {
			grpcLn.Close()
			return fmt.Errorf("grpc socket: %w", err)
		}
		log.Info("listening", zap.String("listener", "grpc-socket"), zap.String("addr", cfg.GRPCSocket))
	}
	httpLn, err := listen(log, "http", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	adminLn, err := listen(log, "admin", cfg.AdminAddr)
	if err != nil {
		return err
	}

	ref := &storeRef{}
	fetcher := jwks.New(jwks.Options{Timeout: cfg.JWKSTimeout, MinRefreshInterval: cfg.JWKSMinRefresh, Logger: log.Named("jwks")})
	defer fetcher.Close()
	cacheSize := cfg.JWTCacheSize
	if cacheSize == 0 {
		cacheSize = -1 // off
	}
	checker := &credentials.Checker{Source: ref, Keys: fetcher, JWTCacheSize: cacheSize,
		HMACWindow: cfg.HMACWindow, HMACLabel: cfg.HMACLabel, ReplayCacheSize: cfg.ReplayCacheSize}
	proxies, _ := cfg.trustedProxies() // checked by Validate
	authz := extauthz.NewServer(checker, extauthz.Options{
		Default:         cfg.DefaultPolicy(),
		Logger:          log,
		TrustedHops:     cfg.TrustedHops,
		TrustedProxies:  proxies,
		MaxRequestBytes: cfg.MaxRequestBytes,
	})
	gs := grpc.NewServer(append(extauthz.ServerOptions(cfg.MaxRequestBytes), authz.ServerOption())...)
	authz.Register(gs)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus(authzService, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(authz.Collectors()...)
	reg.MustRegister(storeCollectors(ref)...)

	var state atomic.Value // "starting", "ready", "stopping"
	state.Store("starting")
	httpSrv := &http.Server{
		// HTTP check mode (/check, /check/...) shares the gRPC server's
		// decisions, metrics and log; everything else is the mux.
		Handler:           authz.HTTPHandler(httpHandler(ref, &state, reg, cfg.Pprof == "true")),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}

	var wg sync.WaitGroup
	errc := make(chan error, 4)
	goServe := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	goServe("grpc", func() error { return gs.Serve(grpcLn) })
	if sockLn != nil {
		goServe("grpc-socket", func() error { return gs.Serve(sockLn) })
	}
	goServe("http", func() error { return httpSrv.Serve(httpLn) })

	// Open and load the store. A corrupted file stops keygate here.
	t0 := time.Now()
	dbPath := filepath.Join(cfg.DataDir, "keygate.db")
	log.Info("opening store", zap.String("path", dbPath))
	store, err := bolt.Open(dbPath, bolt.Options{Logger: log.Named("store"), FlushInterval: cfg.FlushInterval, LockTimeout: cfg.LockTimeout, MasterKey: mk})
	if err != nil {
		gs.Stop()
		httpSrv.Close()
		adminLn.Close()
		wg.Wait()
		return err
	}
	ref.p.Store(store)
	st, _ := store.Status(ctx)
	log.Info("store loaded", zap.Uint64("revision", st.Revision), zap.Int("apikeys", st.Active.APIKeys), zap.Duration("took", time.Since(t0)))
	warnIssuers(ctx, store, log)

	// Keys of jwks_uri issuers are fetched in the background; Checks
	// never wait for them except on an unknown kid (rate-limited).
	goServe("jwks", func() error { fetcher.Run(ctx, ref); return nil })

	adminSrv := &http.Server{
		Handler:           admin.NewHandler(store, admin.Options{Token: token, Logger: log.Named("admin"), MaxBody: cfg.MaxAdminBody}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("admin-http")),
	}
	goServe("admin", func() error { return adminSrv.Serve(adminLn) })

	// Keep the collector off a tiny heap (see internal/gcgoal); the live
	// heap follows the store, so look again now and then.
	log.Info("gc target", zap.Int("gogc", gcgoal.Adjust(minHeapGoal)))
	goServe("gc-target", func() error {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				gcgoal.Adjust(minHeapGoal)
			}
		}
	})

	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(authzService, healthpb.HealthCheckResponse_SERVING)
	state.Store("ready")
	log.Info("keygate ready")

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: finishing in-flight Checks", zap.Duration("timeout", cfg.ShutdownTimeout))
	case runErr = <-errc:
		log.Error("listener failed; shutting down", zap.Error(runErr))
	}
	stop() // cancels ctx on every path, so background loops end before wg.Wait
	state.Store("stopping")
	hs.Shutdown() // NOT_SERVING for every service
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.ShutdownTimeout):
		log.Warn("shutdown timeout: cancelling the remaining Checks")
		gs.Stop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	adminSrv.Shutdown(sctx)
	httpSrv.Shutdown(sctx)
	wg.Wait()
	if err := store.Close(); err != nil {
		return errors.Join(runErr, fmt.Errorf("closing store: %w", err))
	}
	log.Info("keygate stopped cleanly")
	return runErr
}

func listen(log *zap.Logger, name, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", name, err)
	}
	log.Info("listening", zap.String("listener", name), zap.String("addr", ln.Addr().String()))
	return ln, nil
}

func httpHandler(ref *storeRef, state *atomic.Value, reg *prometheus.Registry, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		idx := ref.Index()
		s := state.Load().(string)
		if idx == nil || s != "ready" {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": s})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "revision": idx.Revision, "counts": idx.Counts})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func storeCollectors(ref *storeRef) []prometheus.Collector {
	rev := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "keygate_store_revision", Help: "Revision of the credential store that Checks are answered from.",
	}, func() float64 {
		if idx := ref.Index(); idx != nil {
			return float64(idx.Revision)
		}
		return 0
	})
	active := func(kind string, f func(credentials.Counts) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keygate_credentials_active", Help: "Active credentials and records in the store, by kind.",
			ConstLabels: prometheus.Labels{"kind": kind},
		}, func() float64 {
			if idx := ref.Index(); idx != nil {
				return float64(f(idx.Counts))
			}
			return 0
		})
	}
	return []prometheus.Collector{rev,
		active("tenants", func(c credentials.Counts) int { return c.Tenants }),
		active("clients", func(c credentials.Counts) int { return c.Clients }),
		active("apikeys", func(c credentials.Counts) int { return c.APIKeys }),
		active("hmackeys", func(c credentials.Counts) int { return c.HMACKeys }),
		active("issuers", func(c credentials.Counts) int { return c.Issuers }),
	}
}

// warnIssuers logs the issuers whose tokens are accepted for any
// audience (SPEC §7: a warning at load).
func warnIssuers(ctx context.Context, store credentials.Store, log *zap.Logger) {
	list, err := store.Issuers(ctx, "")
	if err != nil {
		return
	}
	for _, is := range list {
		if len(is.Audiences) == 0 && !is.Disabled {
			log.Warn("issuer has no audiences: tokens for any aud are accepted", zap.String("issuer", is.ID()))
		}
	}
}
