package authz

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/peer"
)

// TestServerCredentialsByTransport: a unix connection carries the peer's
// credentials, plaintext TCP is refused unless allowed, and then anonymous.
func TestServerCredentialsByTransport(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	lis, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer lis.Close()
	client, err := net.Dial("unix", sock)
	require.NoError(t, err)
	defer client.Close()
	server, err := lis.Accept()
	require.NoError(t, err)
	defer server.Close()

	_, ai, err := NewServerCredentials(nil, false).ServerHandshake(server)
	require.NoError(t, err)
	id := IdentityFromPeer(&peer.Peer{Addr: server.RemoteAddr(), AuthInfo: ai})
	assert.Equal(t, TransportUnix, id.Transport)
	assert.Equal(t, "uid:"+strconv.Itoa(os.Getuid()), id.Name)
	assert.Contains(t, id.Principals(), "gid:"+strconv.Itoa(os.Getgid()))

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_, _, err = NewServerCredentials(nil, false).ServerHandshake(a)
	assert.ErrorIs(t, err, ErrPlaintextRefused)
	_, ai, err = NewServerCredentials(nil, true).ServerHandshake(a)
	require.NoError(t, err)
	assert.Equal(t, Anonymous, IdentityFromPeer(&peer.Peer{AuthInfo: ai}).Name)
}

// wrapped is a connection wrapper such as api.LimitListener's.
type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }

// TestServerCredentialsThroughWrappers: a wrapped unix connection still
// carries the peer's credentials (without NetConn it would be plaintext:
// refused, or anonymous with InsecureTCP), and the wrapper is kept.
func TestServerCredentialsThroughWrappers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	lis, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer lis.Close()
	client, err := net.Dial("unix", sock)
	require.NoError(t, err)
	defer client.Close()
	server, err := lis.Accept()
	require.NoError(t, err)
	defer server.Close()

	in := wrapped{wrapped{server}}
	out, ai, err := NewServerCredentials(nil, true).ServerHandshake(in)
	require.NoError(t, err)
	assert.Equal(t, in, out, "the wrapper is what gRPC uses and closes")
	id := IdentityFromPeer(&peer.Peer{Addr: server.RemoteAddr(), AuthInfo: ai})
	assert.Equal(t, TransportUnix, id.Transport)
	assert.Equal(t, "uid:"+strconv.Itoa(os.Getuid()), id.Name)
}
