package authz

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
)

// TLSFiles serves a certificate, its key and a CA bundle from files and
// re-reads them whenever one changes (size, mtime or inode, so an in-place
// write, a rename over the file and Kubernetes' symlink swap all count).
// Handshakes in progress keep what they started with; established
// connections are untouched. When the new files do not load (a half-written
// pair), the previous certificate stays in use and the error is logged once.
type TLSFiles struct {
	cert, key, ca string
	log           *slog.Logger

	mu      sync.Mutex
	stamp   [3]fileStamp
	current *tls.Certificate
	pool    *x509.CertPool
	lastErr string
}

type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = uint64(st.Ino)
	}
	return s, nil
}

// NewTLSFiles loads certPath, keyPath and caPath (the CA bundle that
// verifies peers' certificates); all three are required.
func NewTLSFiles(certPath, keyPath, caPath string, log *slog.Logger) (*TLSFiles, error) {
	if certPath == "" || keyPath == "" || caPath == "" {
		return nil, errors.New("tls: needs a certificate, its key and a CA bundle")
	}
	if log == nil {
		log = slog.Default()
	}
	f := &TLSFiles{cert: certPath, key: keyPath, ca: caPath, log: log}
	if _, _, err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

// load returns the current certificate and pool, re-reading the files if
// they changed since the last load.
func (f *TLSFiles) load() (*tls.Certificate, *x509.CertPool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var now [3]fileStamp
	for i, p := range []string{f.cert, f.key, f.ca} {
		s, err := stampOf(p)
		if err != nil {
			return f.keep(fmt.Errorf("stat %s: %w", p, err))
		}
		now[i] = s
	}
	if f.current != nil && now == f.stamp {
		return f.current, f.pool, nil
	}
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return f.keep(fmt.Errorf("load certificate %s and key %s: %w", f.cert, f.key, err))
	}
	pem, err := os.ReadFile(f.ca)
	if err != nil {
		return f.keep(fmt.Errorf("read CA bundle %s: %w", f.ca, err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return f.keep(fmt.Errorf("read CA bundle %s: no PEM certificate in it", f.ca))
	}
	if f.current != nil {
		f.log.Info("tls: certificates reloaded", "cert", f.cert, "ca", f.ca, "not_after", cert.Leaf.NotAfter)
	}
	f.current, f.pool, f.stamp, f.lastErr = &cert, pool, now, ""
	return f.current, f.pool, nil
}

// keep answers err on the first load and the previous files after it.
func (f *TLSFiles) keep(err error) (*tls.Certificate, *x509.CertPool, error) {
	if f.current == nil {
		return nil, nil, err
	}
	if err.Error() != f.lastErr {
		f.lastErr = err.Error()
		f.log.Warn("tls: keeping the previous certificates", "err", err)
	}
	return f.current, f.pool, nil
}

// Identity is the identity of the current certificate.
func (f *TLSFiles) Identity() string {
	c, _, err := f.load()
	if err != nil || c.Leaf == nil {
		return ""
	}
	return CertIdentity(c.Leaf)
}

// ServerConfig is TLS 1.3 only, requires a client certificate that the CA
// bundle verifies, and picks up new files on the next handshake.
func (f *TLSFiles) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool, err := f.load()
			if err != nil {
				return nil, err
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{*cert},
				ClientCAs:    pool,
				ClientAuth:   tls.RequireAndVerifyClientCert,
				NextProtos:   []string{"h2"},
			}, nil
		},
	}
}

// MetricsConfig is the server configuration for the metrics listener: the
// same certificate, client certificates verified when given but not
// required (a scraper may have none; metrics carry no secrets).
func (f *TLSFiles) MetricsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool, err := f.load()
			if err != nil {
				return nil, err
			}
			return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*cert},
				ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}, nil
		},
	}
}

// PeerConfig is the client configuration for dialing another daemon that
// must present a certificate the CA bundle verifies for server use and
// whose identity is want. The address's host name plays no part: the
// pinned identity replaces the host name check. The daemon presents its
// own (current) certificate.
func (f *TLSFiles) PeerConfig(want string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _, err := f.load()
			return cert, err
		},
		// Verification is done below, against the current CA bundle and
		// the pinned identity instead of a host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, pool, err := f.load()
			if err != nil {
				return err
			}
			return VerifyPeer(cs, pool, want)
		},
	}
}

// VerifyPeer checks that cs's leaf certificate chains to roots for server
// auth and that its identity is want.
func VerifyPeer(cs tls.ConnectionState, roots *x509.CertPool, want string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("verify peer: no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("verify peer certificate: %w", err)
	}
	if got := CertIdentity(leaf); got != want {
		return fmt.Errorf("verify peer: certificate identity %q is not the configured %q", got, want)
	}
	return nil
}
