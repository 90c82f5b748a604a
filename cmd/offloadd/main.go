// Command offloadd is the node daemon: it programs the node's SmartNICs
// with flows that controllers send over gRPC.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/offloadd/offloadd/cmd/offloadd/daemon"
	"github.com/offloadd/offloadd/nic/emulated"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	err := run(os.Args[1:])
	switch {
	case errors.Is(err, pflag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "offloadd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "state" {
		return runState(args[1:], os.Stdout)
	}
	cfg, err := parseConfig(args)
	if err != nil {
		return err
	}
	log := newLogger(cfg)

	d, err := daemon.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := d.Start(ctx); err != nil {
		d.Shutdown(context.Background())
		return err
	}
	info := d.Devices()[0].Info()
	log.Info("offloadd ready", "backend", cfg.Backend, "nic", info.Name, "driver", info.Driver, "model", info.Model, "profile", info.Profile)
	<-ctx.Done()
	log.Info("shutting down", "cause", context.Cause(ctx))
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.Shutdown(sctx)
	return nil
}

// parseConfig builds the daemon config: defaults, then --config, then
// --emulated-config, then flags given on the command line.
func parseConfig(args []string) (daemon.Config, error) { return parseConfigOut(args, os.Stderr) }

// parseConfigOut is parseConfig printing usage (--help, bad flags) to out.
func parseConfigOut(args []string, out io.Writer) (daemon.Config, error) {
	fs := pflag.NewFlagSet("offloadd", pflag.ContinueOnError)
	fs.SetOutput(out)
	cfgPath := fs.String("config", "", "YAML config file (defaults apply to absent fields)")
	socket := fs.String("socket", "", "unix socket path (default /run/offloadd/offloadd.sock)")
	tcp := fs.String("tcp", "", "also listen on this TCP address (TLS 1.3 with client certificates: needs --tls-cert, --tls-key, --tls-client-ca)")
	tlsCert := fs.String("tls-cert", "", "the daemon's certificate (PEM), re-read when it changes")
	tlsKey := fs.String("tls-key", "", "the certificate's private key (PEM)")
	tlsCA := fs.String("tls-client-ca", "", "CA bundle (PEM) that verifies clients' and migration peers' certificates")
	insecureTCP := fs.Bool("insecure-tcp", false, "serve --tcp in PLAINTEXT without authentication (callers are \"anonymous\"); logged as a warning every hour")
	tcpReflection := fs.Bool("tcp-reflection", false, "serve gRPC reflection on TCP too")
	tcpHealth := fs.Bool("tcp-health", false, "serve gRPC health on TCP too (for load balancers and probes)")
	metrics := fs.String("metrics", "", "serve Prometheus metrics on this address (/metrics)")
	metricsTLS := fs.Bool("metrics-tls", false, "serve metrics over TLS with --tls-cert")
	auditLog := fs.String("audit-log", "", "append audit records (JSON lines) to this file (default: the daemon's log, audit=true)")
	backend := fs.String("backend", "", "emulated (default) or linux")
	emuCfg := fs.String("emulated-config", "", "YAML file for the emulated NIC")
	stateDir := fs.String("state-dir", "", "desired-state directory (default /var/lib/offloadd; \"none\" keeps it in memory)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	logFormat := fs.String("log-format", "", "text or json")
	emuFlags := emulated.DefaultConfig()
	emuFlags.AddFlags(fs, "emulated-")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage:\n  offloadd [flags]                  run the daemon\n%s\nFlags:\n%s", stateUsage, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return daemon.Config{}, err
	}
	cfg := daemon.DefaultConfig()
	daemon.Version = version
	if *cfgPath != "" {
		var err error
		if cfg, err = daemon.LoadConfig(*cfgPath); err != nil {
			return cfg, err
		}
	}
	if *emuCfg != "" {
		ec, err := daemon.LoadEmulated(*emuCfg)
		if err != nil {
			return cfg, err
		}
		cfg.Emulated = ec
	}
	// Emulated NIC flags given on the command line win over the files.
	over := pflag.NewFlagSet("emulated", pflag.ContinueOnError)
	cfg.Emulated.AddFlags(over, "emulated-")
	var ferr error
	fs.Visit(func(f *pflag.Flag) {
		if o := over.Lookup(f.Name); o != nil && ferr == nil {
			ferr = o.Value.Set(f.Value.String())
		}
	})
	if ferr != nil {
		return cfg, ferr
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Socket, *socket)
	set(&cfg.TCP, *tcp)
	set(&cfg.Metrics, *metrics)
	set(&cfg.Backend, *backend)
	set(&cfg.StateDir, *stateDir)
	set(&cfg.LogLevel, *logLevel)
	set(&cfg.LogFormat, *logFormat)
	set(&cfg.TLS.Cert, *tlsCert)
	set(&cfg.TLS.Key, *tlsKey)
	set(&cfg.TLS.ClientCA, *tlsCA)
	set(&cfg.AuditLog, *auditLog)
	setBool := func(dst *bool, name string, v bool) {
		if fs.Changed(name) {
			*dst = v
		}
	}
	setBool(&cfg.InsecureTCP, "insecure-tcp", *insecureTCP)
	setBool(&cfg.TCPReflection, "tcp-reflection", *tcpReflection)
	setBool(&cfg.TCPHealth, "tcp-health", *tcpHealth)
	setBool(&cfg.MetricsTLS, "metrics-tls", *metricsTLS)
	if cfg.StateDir == "none" {
		cfg.StateDir = ""
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

func newLogger(cfg daemon.Config) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
