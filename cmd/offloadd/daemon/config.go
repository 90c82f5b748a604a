package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/offloadd/offloadd/api"
	"github.com/offloadd/offloadd/api/authz"
	"github.com/offloadd/offloadd/nic/emulated"
	"github.com/offloadd/offloadd/nic/emulated/datapath"
)

// Config is the daemon's configuration file. Flags override its fields.
type Config struct {
	// Socket is the unix socket the API listens on (default /run/offloadd/offloadd.sock), mode 0600.
	Socket string `json:"socket"`
	// TCP is an optional extra listen address ("127.0.0.1:50051"); empty
	// (default) disables it. It serves TLS 1.3 with client certificates
	// (TLS below) unless InsecureTCP is set.
	TCP string `json:"tcp,omitempty"`
	// TLS is the daemon's certificate and the CA bundle that verifies its
	// clients and peers, for the TCP listener, migration peers and, with
	// MetricsTLS, the metrics listener (default: none).
	TLS TLSConfig `json:"tls"`
	// InsecureTCP serves TCP in plaintext, without TLS, every caller being
	// "anonymous" in the policy (default false). A warning is logged at
	// start and every hour.
	InsecureTCP bool `json:"insecureTCP,omitempty"`
	// TCPReflection serves gRPC reflection on TCP (default false; the unix
	// socket always serves it).
	TCPReflection bool `json:"tcpReflection,omitempty"`
	// TCPHealth serves gRPC health on TCP (default false: the unix
	// socket always has it).
	TCPHealth bool `json:"tcpHealth"`
	// MetricsTLS serves metrics over TLS with the TLS certificate, client
	// certificates verified when presented (default false).
	MetricsTLS bool `json:"metricsTLS,omitempty"`
	// Policy binds identities to roles (default: none). See docs/security.md.
	Policy []authz.Binding `json:"policy,omitempty"`
	// UnixRootAdmin makes uid 0 and the daemon's own uid admin on the unix
	// socket whatever Policy says (default true).
	UnixRootAdmin bool `json:"unixRootAdmin"`
	// Peers are the daemons ExportMigration may forward bundles to, by
	// name (default: none). Peers need TLS.
	Peers []authz.Peer `json:"peers,omitempty"`
	// AuditLog is a file that receives the audit records as JSON lines,
	// created mode 0600 and appended to; empty (default) writes them to the
	// daemon's log with audit=true.
	AuditLog string `json:"auditLog,omitempty"`
	// Metrics is the address of the Prometheus endpoint (/metrics), e.g.
	// "127.0.0.1:9641"; empty (default) disables it.
	Metrics string `json:"metrics,omitempty"`
	// Backend is "emulated" (default) or "linux".
	Backend string `json:"backend"`
	// Emulated configures the emulated NIC (default: one ConnectX-6 Dx port with 8 VFs).
	Emulated emulated.Config `json:"emulated"`
	// Datapath configures the emulated NIC's packet executor.
	Datapath DatapathConfig `json:"datapath"`
	// Linux configures the real backend (default: every switchdev PF under /sys).
	Linux LinuxConfig `json:"linux"`
	// VFPools configures VF pools from a device plugin config file (default: none).
	VFPools VFPoolsConfig `json:"vfPools"`
	// StateDir holds the persisted desired state (default /var/lib/offloadd); "" keeps state in memory.
	StateDir string `json:"stateDir"`
	// StatsInterval is how often counters are read from the devices (default 1s).
	StatsInterval Duration `json:"statsInterval"`
	// PromoteRetry is how often flows spilled by device errors retry hardware (default 30s).
	PromoteRetry Duration `json:"promoteRetry"`
	// LogLevel is debug, info (default), warn or error; LogFormat is text (default) or json.
	LogLevel  string `json:"logLevel"`
	LogFormat string `json:"logFormat"`
	// Limits bound what API clients may hold and send (defaults below).
	Limits LimitsConfig `json:"limits"`
}

// LimitsConfig bounds the API's clients; see api.Limits. A hit is logged
// and counted in offloadd_api_limit_hits_total{limit}. Zero takes the
// default.
type LimitsConfig struct {
	// MaxConnections per listener (default 256); more are closed on accept.
	MaxConnections int `json:"maxConnections"`
	// MaxStreamsPerConnection: calls in flight on one connection (default 128).
	MaxStreamsPerConnection uint32 `json:"maxStreamsPerConnection"`
	// MaxRecvMsgSize and MaxSendMsgSize in bytes (default 64 MiB each).
	MaxRecvMsgSize int `json:"maxRecvMsgSize"`
	MaxSendMsgSize int `json:"maxSendMsgSize"`
	// MaxFlowsPerRequest of ApplyFlows and ExplainFlows (default 10000).
	MaxFlowsPerRequest int `json:"maxFlowsPerRequest"`
	// MaxWatchers: WatchFlows streams open at once (default 64).
	MaxWatchers int `json:"maxWatchers"`
	// MaxConcurrentLists: ListFlows pages built at once (default 1).
	MaxConcurrentLists int `json:"maxConcurrentLists"`
	// MaxConnectionIdle closes a connection without calls (default 30m).
	MaxConnectionIdle Duration `json:"maxConnectionIdle"`
	// KeepaliveMinTime: clients pinging more often are sent GOAWAY (default 10s).
	KeepaliveMinTime Duration `json:"keepaliveMinTime"`
}

func limitsConfig(l api.Limits) LimitsConfig {
	return LimitsConfig{MaxConnections: l.MaxConnections, MaxStreamsPerConnection: l.MaxStreamsPerConnection,
		MaxRecvMsgSize: l.MaxRecvMsgSize, MaxSendMsgSize: l.MaxSendMsgSize, MaxFlowsPerRequest: l.MaxFlowsPerRequest,
		MaxWatchers: l.MaxWatchers, MaxConcurrentLists: l.MaxConcurrentLists,
		MaxConnectionIdle: Duration(l.MaxConnectionIdle), KeepaliveMinTime: Duration(l.KeepaliveMinTime)}
}

// API returns the limits with defaults filled in.
func (l LimitsConfig) API() api.Limits {
	return api.Limits{MaxConnections: l.MaxConnections, MaxStreamsPerConnection: l.MaxStreamsPerConnection,
		MaxRecvMsgSize: l.MaxRecvMsgSize, MaxSendMsgSize: l.MaxSendMsgSize, MaxFlowsPerRequest: l.MaxFlowsPerRequest,
		MaxWatchers: l.MaxWatchers, MaxConcurrentLists: l.MaxConcurrentLists, MaxConnectionIdle: time.Duration(l.MaxConnectionIdle),
		KeepaliveMinTime: time.Duration(l.KeepaliveMinTime)}.WithDefaults()
}

func (l LimitsConfig) validate() error {
	for _, v := range []struct {
		name string
		n    int64
	}{{"maxConnections", int64(l.MaxConnections)}, {"maxRecvMsgSize", int64(l.MaxRecvMsgSize)},
		{"maxSendMsgSize", int64(l.MaxSendMsgSize)}, {"maxFlowsPerRequest", int64(l.MaxFlowsPerRequest)},
		{"maxWatchers", int64(l.MaxWatchers)}, {"maxConnectionIdle", int64(l.MaxConnectionIdle)},
		{"keepaliveMinTime", int64(l.KeepaliveMinTime)}} {
		if v.n < 0 {
			return fmt.Errorf("limits.%s: %d is negative", v.name, v.n)
		}
	}
	return nil
}

// TLSConfig names PEM files; all three or none. They are re-read when
// they change, so rotating them needs no restart.
type TLSConfig struct {
	// Cert is the daemon's certificate (chain), for server and client use.
	Cert string `json:"cert,omitempty"`
	// Key is its private key.
	Key string `json:"key,omitempty"`
	// ClientCA is the CA bundle that verifies clients' and peers' certificates.
	ClientCA string `json:"clientCA,omitempty"`
}

// Enabled reports whether any file is named.
func (t TLSConfig) Enabled() bool { return t.Cert != "" || t.Key != "" || t.ClientCA != "" }

// DatapathConfig configures the emulated datapath.
type DatapathConfig struct {
	// Neighbours are static neighbour entries for tunnel next hops (default
	// none: they are learned from ARP/NDP replies).
	Neighbours []NeighbourConfig `json:"neighbours,omitempty"`
}

// NeighbourConfig is one static neighbour.
type NeighbourConfig struct {
	IP  string `json:"ip"`
	MAC string `json:"mac"`
}

func (c DatapathConfig) build() (datapath.Config, error) {
	var out datapath.Config
	for i, n := range c.Neighbours {
		ip, err := netip.ParseAddr(n.IP)
		if err != nil {
			return out, fmt.Errorf("datapath.neighbours[%d].ip: %w", i, err)
		}
		hw, err := net.ParseMAC(n.MAC)
		if err != nil || len(hw) != 6 {
			return out, fmt.Errorf("datapath.neighbours[%d].mac: %q is not a MAC address", i, n.MAC)
		}
		nb := datapath.Neighbour{IP: ip}
		copy(nb.MAC[:], hw)
		out.Neighbours = append(out.Neighbours, nb)
	}
	return out, nil
}

// Duration is a time.Duration written as "1s".
type Duration = emulated.Duration

// DefaultConfig returns the defaults stated on Config's fields.
func DefaultConfig() Config {
	return Config{
		Socket:        "/run/offloadd/offloadd.sock",
		Backend:       "emulated",
		Emulated:      emulated.DefaultConfig(),
		Linux:         defaultLinuxConfig(),
		StateDir:      "/var/lib/offloadd",
		StatsInterval: Duration(time.Second),
		PromoteRetry:  Duration(30 * time.Second),
		LogLevel:      "info",
		LogFormat:     "text",
		UnixRootAdmin: true,
		Limits:        limitsConfig(api.DefaultLimits()),
	}
}

// LoadConfig reads a YAML file over the defaults.
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config %s: %w", path, err)
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return c, fmt.Errorf("parse config %s: %w", path, err)
	}
	return c, nil
}

// Validate checks the fields the daemon uses directly.
func (c *Config) Validate() error {
	if err := c.Limits.validate(); err != nil {
		return err
	}
	switch c.Backend {
	case "emulated":
		if err := c.Emulated.Validate(); err != nil {
			return fmt.Errorf("emulated: %w", err)
		}
		if _, err := c.Datapath.build(); err != nil {
			return err
		}
	case "linux":
		if err := c.Linux.validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("backend: %q is not emulated or linux", c.Backend)
	}
	if c.Socket == "" && c.TCP == "" {
		return fmt.Errorf("socket: needs a socket path or a tcp address")
	}
	if err := c.validateSecurity(); err != nil {
		return err
	}
	if c.StatsInterval < 0 {
		return fmt.Errorf("statsInterval: must not be negative")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("logLevel: %q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("logFormat: %q is not text or json", c.LogFormat)
	}
	return nil
}

// validateSecurity checks TLS, the policy and the peers.
func (c *Config) validateSecurity() error {
	if c.TLS.Enabled() && (c.TLS.Cert == "" || c.TLS.Key == "" || c.TLS.ClientCA == "") {
		return fmt.Errorf("tls: needs cert, key and clientCA (mTLS), not only some of them")
	}
	if c.InsecureTCP && c.TLS.Enabled() {
		return fmt.Errorf("insecureTCP: tls is configured; drop one of them (TCP would be TLS, not plaintext)")
	}
	if c.TCP != "" && !c.TLS.Enabled() && !c.InsecureTCP {
		return fmt.Errorf("tcp: %s needs tls (cert, key, clientCA) or, to serve plaintext, insecureTCP (--insecure-tcp)", c.TCP)
	}
	if c.MetricsTLS && !c.TLS.Enabled() {
		return fmt.Errorf("metricsTLS: needs tls (cert, key, clientCA)")
	}
	if c.MetricsTLS && c.Metrics == "" {
		return fmt.Errorf("metricsTLS: needs a metrics address")
	}
	for i, b := range c.Policy {
		if err := b.Validate(); err != nil {
			return fmt.Errorf("policy[%d]: %w", i, err)
		}
	}
	if len(c.Peers) > 0 && !c.TLS.Enabled() {
		return fmt.Errorf("peers: migration peers need tls (cert, key, clientCA): the daemons authenticate each other")
	}
	return authz.ValidatePeers(c.Peers)
}
