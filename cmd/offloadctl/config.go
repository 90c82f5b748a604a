package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/yaml"
)

// configEnv names offloadctl's config file, instead of the default
// $XDG_CONFIG_HOME/offloadd/offloadctl.yaml (~/.config/offloadd/offloadctl.yaml).
const configEnv = "OFFLOADCTL_CONFIG"

// fileConfig is offloadctl's config file: defaults for the global flags,
// which win over it (and OFFLOADD_SOCKET over its socket).
type fileConfig struct {
	// Socket is the daemon's unix socket (default /run/offloadd/offloadd.sock).
	Socket string `json:"socket,omitempty"`
	// Addr is the daemon's TCP address, host:port (default: none, use the socket).
	Addr string `json:"addr,omitempty"`
	// Cert and Key are the client certificate and key, PEM (default: none).
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	// CA is the bundle that verifies the daemon's certificate (default: none).
	CA string `json:"ca,omitempty"`
	// ServerName is the name the daemon's certificate must carry (default:
	// the host of addr).
	ServerName string `json:"serverName,omitempty"`
}

// loadConfig reads $OFFLOADCTL_CONFIG, which must exist when set, or the
// default file when there is one.
func loadConfig(getenv func(string) string) (fileConfig, error) {
	var c fileConfig
	path, explicit := getenv(configEnv), true
	if path == "" {
		explicit = false
		dir := getenv("XDG_CONFIG_HOME")
		if dir == "" {
			home := getenv("HOME")
			if home == "" {
				return c, nil
			}
			dir = filepath.Join(home, ".config")
		}
		path = filepath.Join(dir, "offloadd", "offloadctl.yaml")
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && !explicit:
		return c, nil
	case err != nil:
		return c, fmt.Errorf("read config %s: %w", path, err)
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return c, fmt.Errorf("parse config %s: %w", path, err)
	}
	// Relative paths in the file are relative to the file.
	for _, p := range []*string{&c.Cert, &c.Key, &c.CA} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(filepath.Dir(path), *p)
		}
	}
	return c, nil
}

// tlsFlags are the client's TLS settings for TCP.
type tlsFlags struct {
	cert, key, ca, serverName string
	insecure                  bool
}

func (f *tlsFlags) addFlags(pf *pflag.FlagSet, file fileConfig) {
	pf.StringVar(&f.cert, "cert", file.Cert, "client certificate (PEM) for --addr")
	pf.StringVar(&f.key, "key", file.Key, "client certificate's key (PEM)")
	pf.StringVar(&f.ca, "ca", file.CA, "CA bundle (PEM) that verifies the daemon's certificate")
	pf.StringVar(&f.serverName, "server-name", file.ServerName, "name the daemon's certificate must carry (default: the host of --addr)")
	pf.BoolVar(&f.insecure, "insecure", false, "plaintext TCP, for a daemon started with --insecure-tcp")
}

// credentials for target: none needed on a unix socket; mTLS on TCP.
func (f *tlsFlags) credentials(target string) (credentials.TransportCredentials, error) {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return insecure.NewCredentials(), nil
	}
	if f.insecure {
		return insecure.NewCredentials(), nil
	}
	if f.cert == "" || f.key == "" || f.ca == "" {
		return nil, usageErrorf("%s is TCP: give --cert, --key and --ca (or set them in %s), or --insecure for a daemon started with --insecure-tcp", target,
			"~/.config/offloadd/offloadctl.yaml")
	}
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, usageErrorf("load client certificate %s and key %s: %v", f.cert, f.key, err)
	}
	pem, err := os.ReadFile(f.ca)
	if err != nil {
		return nil, usageErrorf("read CA bundle: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, usageErrorf("read CA bundle %s: no PEM certificate in it", f.ca)
	}
	name := f.serverName
	if name == "" {
		host := strings.TrimPrefix(target, "dns:///")
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		name = host
	}
	return credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		RootCAs: roots, ServerName: name}), nil
}
