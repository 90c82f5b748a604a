package authz

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Peer is another daemon this one may forward migration bundles to.
type Peer struct {
	// Name is what ExportMigration's forward_to names ("node-b").
	Name string `json:"name"`
	// Address is the peer's TCP listener, "host:port".
	Address string `json:"address"`
	// Identity is what the peer's certificate must carry, in policy form
	// ("spiffe://…", "dns:NAME" or "cn:NAME"). The peer gets the
	// migration-peer role for it, so it may forward bundles here too.
	Identity string `json:"identity"`
}

var peerNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks the peer's fields.
func (p Peer) Validate() error {
	if !peerNameRE.MatchString(p.Name) {
		return fmt.Errorf("peer %q: name must be letters, digits, '.', '_' or '-'", p.Name)
	}
	if p.Address == "" {
		return fmt.Errorf("peer %s: no address", p.Name)
	}
	if err := validIdentity(p.Identity); err != nil || p.Identity == Anonymous || hasUnixPrefix(p.Identity) {
		return fmt.Errorf("peer %s: identity %q: want a certificate identity (spiffe://…, dns:NAME or cn:NAME)", p.Name, p.Identity)
	}
	return nil
}

func hasUnixPrefix(s string) bool {
	return strings.HasPrefix(s, "uid:") || strings.HasPrefix(s, "gid:")
}

// ValidatePeers checks every peer and that no name is used twice.
func ValidatePeers(peers []Peer) error {
	for i, p := range peers {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("peers[%d]: %w", i, err)
		}
		if slices.ContainsFunc(peers[:i], func(q Peer) bool { return q.Name == p.Name }) {
			return fmt.Errorf("peers[%d]: name %s is used twice", i, p.Name)
		}
	}
	return nil
}

// ErrUnknownPeer is a peer name that is not configured.
var ErrUnknownPeer = errors.New("not a configured peer")

// PeerSet dials configured peers over mTLS with the daemon's certificate,
// pinning each peer's identity. It implements api.Peers.
type PeerSet struct {
	peers []Peer
	tls   *TLSFiles
	opts  []grpc.DialOption
}

// NewPeerSet checks peers; tls is required when there are any. opts are
// added to every dial (message size limits).
func NewPeerSet(peers []Peer, tls *TLSFiles, opts ...grpc.DialOption) (*PeerSet, error) {
	if err := ValidatePeers(peers); err != nil {
		return nil, err
	}
	if len(peers) > 0 && tls == nil {
		return nil, errors.New("peers: migration peers need tls (cert, key, clientCA): the daemons authenticate each other")
	}
	return &PeerSet{peers: peers, tls: tls, opts: opts}, nil
}

// Bindings give every peer's identity the migration-peer role.
func (s *PeerSet) Bindings() []Binding {
	out := make([]Binding, len(s.peers))
	for i, p := range s.peers {
		out[i] = Binding{Identity: p.Identity, Roles: []Role{RoleMigrationPeer}}
	}
	return out
}

func (s *PeerSet) find(name string) (Peer, bool) {
	i := slices.IndexFunc(s.peers, func(p Peer) bool { return p.Name == name })
	if i < 0 {
		return Peer{}, false
	}
	return s.peers[i], true
}

// HasPeer reports whether name is configured.
func (s *PeerSet) HasPeer(name string) bool {
	_, ok := s.find(name)
	return ok
}

// DialPeer connects to the peer called name. The connection presents this
// daemon's certificate and accepts only a certificate from the CA bundle
// whose identity is the peer's configured one.
func (s *PeerSet) DialPeer(_ context.Context, name string) (*grpc.ClientConn, error) {
	p, ok := s.find(name)
	if !ok {
		return nil, fmt.Errorf("dial peer %s: %w", name, ErrUnknownPeer)
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(s.tls.PeerConfig(p.Identity)))}, s.opts...)
	conn, err := grpc.NewClient("passthrough:///"+p.Address, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial peer %s at %s: %w", name, p.Address, err)
	}
	return conn, nil
}
