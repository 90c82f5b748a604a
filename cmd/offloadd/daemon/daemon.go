package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/offloadd/offloadd/api"
	"github.com/offloadd/offloadd/fallback"
	"github.com/offloadd/offloadd/nic"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
	"github.com/offloadd/offloadd/offload"
	"github.com/offloadd/offloadd/offload/store"
	"github.com/offloadd/offloadd/vfmgr"
)

// MaxMsgSize bounds one gRPC message to and from migration peers: a
// 10,000-flow batch and its results fit. The API's own limits are
// Config.Limits.
const MaxMsgSize = 64 << 20

// Version is reported by GetNode; cmd/offloadd sets it from its build.
var Version = "dev"

// Daemon is offloadd wired together: devices, engine, promoter, API server.
type Daemon struct {
	cfg    Config
	log    *slog.Logger
	devs   []nic.Device
	engine *offload.Engine
	store  *store.Bolt
	sec    *security
	grpc   *grpc.Server
	api    *api.Server
	hits   *api.LimitHits
	mig    *fallback.Migrator
	http   *http.Server
	// metricsAddr is where metrics are served, once started.
	metricsAddr net.Addr
	dp          *datapath.Datapath
	// vfAlloc hands out pool VFs (nil without a pool config).
	vfAlloc *vfmgr.Allocator
	// closers run at shutdown after the devices' users have stopped.
	closers []func() error
	lis     []net.Listener
	// ownSocket is set once the daemon has created its unix socket, the
	// only thing at that path Shutdown may remove.
	ownSocket bool
	// tcpAddr is the TCP listener's address, once listening.
	tcpAddr string

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New builds every part from cfg; nothing listens until Start.
func New(cfg Config, log *slog.Logger) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	d := &Daemon{cfg: cfg, log: log}
	reg := nic.NewRegistry()
	var emu *emulated.Device
	switch cfg.Backend {
	case "emulated":
		dev, err := emulated.New(cfg.Emulated, reg)
		if err != nil {
			return nil, fmt.Errorf("start emulated NIC: %w", err)
		}
		d.devs = append(d.devs, dev)
		emu = dev
	default:
		devs, err := newLinuxDevices(cfg.Linux, reg, log)
		if err != nil {
			return nil, err
		}
		d.devs = devs
	}
	ecfg := offload.Config{Devices: d.devs, Logger: log}
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			d.closeDevices()
			return nil, fmt.Errorf("create state dir %s: %w", cfg.StateDir, err)
		}
		path := filepath.Join(cfg.StateDir, store.FileName)
		st, err := store.OpenWith(path, store.Options{Log: log})
		if err != nil {
			d.closeDevices()
			if errors.Is(err, store.ErrDamaged) {
				err = fmt.Errorf("%w (not starting: restore would delete the rules of flows it cannot read; "+
					"inspect with offloadd state check %s, keep the good records with offloadd state repair %s, or restore a backup)", err, path, path)
			}
			return nil, err
		}
		d.store, ecfg.Store = st, st
	}
	eng, err := offload.New(ecfg)
	if err != nil {
		d.closeDevices()
		return nil, err
	}
	d.engine = eng
	sec, closers, err := newSecurity(cfg, log, eng)
	if err != nil {
		d.closeDevices()
		return nil, err
	}
	d.sec = sec
	d.closers = append(d.closers, closers...)
	// Controllers send batches of thousands of flows, several in flight:
	// windows of 1 and 4 MiB (not gRPC's 64 KiB start) let them stream
	// without waiting on flow-control updates, and bigger reads mean fewer
	// syscalls per batch.
	limits := cfg.Limits.API()
	d.hits = api.NewLimitHits(log)
	opts := append(append(api.ServerOptions(), sec.serverOptions()...), limits.ServerOptions()...)
	d.grpc = grpc.NewServer(append(opts,
		grpc.InitialWindowSize(1<<20), grpc.InitialConnWindowSize(4<<20), grpc.ReadBufferSize(256<<10))...)
	d.api = api.NewServer(eng, eng, api.WithLogger(log), api.WithVersion(Version),
		// The authz interceptors read ApplyFlows batches as the codec decodes them.
		api.WithBatchInterceptors(), api.WithLimits(limits, d.hits))
	d.api.Register(d.grpc)
	if err := d.wireDatapathAndMigration(cfg, emu); err != nil {
		d.closeDevices()
		return nil, err
	}
	if err := d.wireVFPools(cfg, emu); err != nil {
		d.closeDevices()
		return nil, err
	}
	return d, nil
}

// wireDatapathAndMigration serves DatapathService (emulated NICs run real
// packets; the Linux backend answers Unimplemented) and MigrationService
// over the engine, the node's conntrack table and, when emulated, its VFs.
func (d *Daemon) wireDatapathAndMigration(cfg Config, emu *emulated.Device) error {
	mcfg := fallback.MigratorConfig{Engine: d.engine, Logger: d.log}
	mcfg.Node, _ = os.Hostname()
	dps := map[string]api.Datapath{}
	if emu != nil {
		dcfg, err := cfg.Datapath.build()
		if err != nil {
			return err
		}
		dp, err := datapath.New(emu, dcfg)
		if err != nil {
			return fmt.Errorf("start emulated datapath: %w", err)
		}
		dps[emu.Info().Name] = dp
		d.dp = dp
		mcfg.Conntrack = fallback.NewEmulatedConns(dp.Conntrack(), dp.Now)
		// A VF is busy for migration when its representor has flows or a
		// pool has given it out (pools are wired after this, hence the late read).
		mcfg.VFs = fallback.NewEmulatedVFs(emu, func(rep string) bool {
			if d.vfAlloc != nil {
				for _, a := range d.vfAlloc.Allocations() {
					if a.Representor == rep {
						return true
					}
				}
			}
			return len(d.engine.List(offload.Filter{Port: rep})) > 0
		})
	} else {
		k, err := fallback.NewKernelConntrack(0)
		if err != nil {
			d.log.Warn("kernel conntrack unavailable: migrations move flows but no connection state", "err", err)
		} else {
			mcfg.Conntrack = k
			d.closers = append(d.closers, k.Close)
		}
	}
	api.NewDatapathService(dps).Register(d.grpc)
	if cfg.StateDir != "" {
		recs, err := fallback.NewFileStore(filepath.Join(cfg.StateDir, "migrations"))
		if err != nil {
			return err
		}
		mcfg.Store = recs
	}
	m, err := fallback.NewMigrator(mcfg)
	if err != nil {
		return err
	}
	d.mig = m
	api.NewMigrationService(m, api.WithMigrationLogger(d.log), api.WithPeers(d.sec.peers)).Register(d.grpc)
	return nil
}

// Datapath is the emulated NIC's packet executor (nil on the Linux backend).
func (d *Daemon) Datapath() *datapath.Datapath { return d.dp }

func (d *Daemon) closeDevices() {
	for _, c := range d.closers {
		c()
	}
	for _, dev := range d.devs {
		dev.Close()
	}
	if d.store != nil {
		d.store.Close()
	}
}

// Devices returns the daemon's NICs.
func (d *Daemon) Devices() []nic.Device { return d.devs }

// Engine exposes the engine to in-process tests.
func (d *Daemon) Engine() *offload.Engine { return d.engine }

// Start restores state, starts the background loops and listens.
func (d *Daemon) Start(ctx context.Context) error {
	rep, err := d.engine.Restore(ctx)
	if err != nil {
		return err
	}
	if rep != (offload.RestoreReport{}) {
		d.log.Info("restored desired state", "adopted", rep.Adopted, "installed", rep.Installed, "pending", rep.Pending, "orphans_removed", rep.Orphans)
	}
	// Before the promoter runs: migrations in flight keep their flows held.
	if err := d.mig.Recover(ctx); err != nil {
		return fmt.Errorf("recover migrations: %w", err)
	}
	if d.cfg.Socket != "" {
		lis, err := listenUnix(d.cfg.Socket)
		if err != nil {
			return err
		}
		d.lis = append(d.lis, lis)
		d.ownSocket = true
	}
	if d.cfg.TCP != "" {
		lis, err := net.Listen("tcp", d.cfg.TCP)
		if err != nil {
			d.closeListeners()
			return fmt.Errorf("listen on %s: %w", d.cfg.TCP, err)
		}
		d.lis = append(d.lis, lis)
		d.tcpAddr = lis.Addr().String()
	}
	if d.cfg.Metrics != "" {
		lis, err := net.Listen("tcp", d.cfg.Metrics)
		if err != nil {
			d.closeListeners()
			return fmt.Errorf("listen for metrics on %s: %w", d.cfg.Metrics, err)
		}
		if d.cfg.MetricsTLS {
			lis = tls.NewListener(lis, d.sec.tls.MetricsConfig())
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(api.NewMetrics(d.engine, d.engine), d.hits, collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		d.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelDebug)}
		d.metricsAddr = lis.Addr()
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := d.http.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("serve metrics", "addr", lis.Addr().String(), "err", err)
			}
		}()
		d.log.Info("serving metrics", "addr", lis.Addr().String())
	}
	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Add(3)
	go func() {
		defer d.wg.Done()
		d.followDurability(runCtx, durabilityPoll)
	}()
	go func() {
		defer d.wg.Done()
		d.engine.Run(runCtx, time.Duration(d.cfg.StatsInterval))
	}()
	go func() {
		defer d.wg.Done()
		fallback.NewPromoter(d.engine, d.log, time.Duration(d.cfg.PromoteRetry)).Run(runCtx)
	}()
	if d.tcpAddr != "" && d.sec.tls == nil {
		warnPlaintext(d.log, d.tcpAddr)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			warnPlaintextEvery(runCtx, d.log, d.tcpAddr, insecureWarnEvery)
		}()
	}
	for _, lis := range d.lis {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := d.grpc.Serve(api.LimitListener(lis, d.cfg.Limits.API().MaxConnections, d.hits)); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				d.log.Error("serve API", "addr", lis.Addr().String(), "err", err)
			}
		}()
		d.log.Info("serving API", "addr", lis.Addr().String(), "security", d.sec.describe(lis.Addr().Network()))
	}
	return nil
}

// MetricsAddr is the metrics listener's address (nil when disabled).
func (d *Daemon) MetricsAddr() net.Addr { return d.metricsAddr }

// Addrs returns the listening addresses.
func (d *Daemon) Addrs() []net.Addr {
	out := make([]net.Addr, len(d.lis))
	for i, l := range d.lis {
		out[i] = l.Addr()
	}
	return out
}

// listenUnix listens on path with mode 0600, replacing a stale socket but
// nothing else.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir for %s: %w", path, err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("listen on %s: another offloadd is serving there", path)
	}
	// Only a stale socket is ours to remove: a regular file, a directory or
	// a symlink at the path is someone else's, and the daemon runs as root.
	switch fi, err := os.Lstat(path); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("check socket path %s: %w", path, err)
	case fi.Mode().Type() != os.ModeSocket:
		return nil, fmt.Errorf("listen on %s: %s exists and is not a socket (%s); refusing to remove it", path, path, fi.Mode().Type())
	default:
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("chmod socket %s: %w", path, err)
	}
	return lis, nil
}

// removeSocket removes path if it is still a socket.
func removeSocket(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == os.ModeSocket {
		os.Remove(path)
	}
}

func (d *Daemon) closeListeners() {
	for _, l := range d.lis {
		l.Close()
	}
}

// Shutdown stops serving (letting RPCs in flight finish until ctx ends) and
// closes everything. Installed flows stay in the devices. It is idempotent.
func (d *Daemon) Shutdown(ctx context.Context) {
	d.once.Do(func() {
		d.api.SetServing(false)
		d.engine.Close()
		done := make(chan struct{})
		go func() {
			d.grpc.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			d.grpc.Stop()
		}
		if d.http != nil {
			d.http.Shutdown(ctx)
		}
		if d.cancel != nil {
			d.cancel()
		}
		d.wg.Wait()
		d.closeDevices()
		if d.ownSocket {
			removeSocket(d.cfg.Socket)
		}
		d.log.Info("stopped")
	})
}

// durabilityPoll is how often the daemon checks the state store's health.
const durabilityPoll = 250 * time.Millisecond

// followDurability reports the daemon NOT_SERVING while writes of the
// desired state fail (the engine refuses changes then) and SERVING again
// once they succeed, with a log line at each change.
func (d *Daemon) followDurability(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err, n := d.engine.Durability()
		switch {
		case err != nil && !failing:
			d.log.Error("state store failing: refusing changes, health NOT_SERVING", "err", err, "failed_writes", n)
			d.api.SetServing(false)
		case err == nil && failing:
			d.log.Info("state store recovered: every pending change is saved, health SERVING", "failed_writes", n)
			d.api.SetServing(true)
		}
		failing = err != nil
	}
}
