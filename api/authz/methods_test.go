package authz

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/offloadd/offloadd/api/offloadd/v1"
)

// apiMethods are the full names of every RPC of every service in the
// offloadd.v1 protobuf package, as the generated code registers them.
func apiMethods(t *testing.T) []string {
	t.Helper()
	var out []string
	protoregistry.GlobalFiles.RangeFilesByPackage("offloadd.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				out = append(out, fmt.Sprintf("/%s/%s", sd.FullName(), sd.Methods().Get(j).Name()))
			}
		}
		return true
	})
	require.Greater(t, len(out), 20, "the services of api/offloadd/v1 are registered")
	return out
}

// TestMethodsCoverEveryRPC: an RPC added to a service without a rule here
// would be refused to all but admin; the table must say who may call it.
func TestMethodsCoverEveryRPC(t *testing.T) {
	api := apiMethods(t)
	for _, m := range api {
		_, ok := Methods[m]
		assert.True(t, ok, "%s has no entry in authz.Methods: add the least role that may call it", m)
	}
	for m := range Methods {
		if strings.HasPrefix(m, "/offloadd.v1.") {
			assert.Contains(t, api, m, "authz.Methods names an RPC that no longer exists")
		}
	}
}

func TestRoleCovers(t *testing.T) {
	mins := []Role{RoleAny, RoleReader, RoleOperator, RoleMigrationPeer, RoleAdmin}
	want := map[Role]string{ // one letter per min above: y allowed, n not
		RoleReader:        "yynnn",
		RoleOperator:      "yyynn",
		RoleMigrationPeer: "ynnyn",
		RoleAdmin:         "yyyyy",
	}
	for r, row := range want {
		for i, min := range mins {
			assert.Equal(t, row[i] == 'y', r.covers(min), "%s covers %q", r, min)
		}
	}
}
