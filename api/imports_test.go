package api

import (
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/offloadd/offloadd"

// forbidden reports why the generated API package must not import path
// (STYLE.md item 15: clients import it without the daemon), or "".
func forbidden(path string) string {
	switch {
	case path == module || strings.HasPrefix(path, module+"/"):
		return "is part of the daemon module"
	case strings.Contains(path, "netlink"):
		return "is a netlink library"
	}
	return ""
}

func TestForbidden(t *testing.T) {
	assert.NotEmpty(t, forbidden(module+"/offload/flow"))
	assert.NotEmpty(t, forbidden("github.com/vishvananda/netlink"))
	assert.NotEmpty(t, forbidden("github.com/mdlayher/netlink/nlenc"))
	assert.Empty(t, forbidden("google.golang.org/grpc"))
	assert.Empty(t, forbidden(module+"x/other"))
}

// TestGeneratedPackageImports checks the direct imports of every Go file of
// the generated package.
func TestGeneratedPackageImports(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("offloadd", "v1", "*.go"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			require.NoError(t, err)
			if why := forbidden(path); why != "" {
				t.Errorf("%s imports %s, which %s", name, path, why)
			}
		}
	}
}

// TestGeneratedPackageDeps checks every transitive dependency, as the go
// command resolves them.
func TestGeneratedPackageDeps(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not in PATH")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", "./offloadd/v1").CombinedOutput()
	require.NoError(t, err, "%s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, module+"/api/offloadd/v1")
	for _, d := range deps {
		if d == module+"/api/offloadd/v1" {
			continue
		}
		if why := forbidden(d); why != "" {
			t.Errorf("api/offloadd/v1 depends on %s, which %s", d, why)
		}
	}
}
