package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNoDaemonImports keeps offloadctl a plain API client: of this module
// it may use only the generated API package and the flow file reader.
func TestNoDaemonImports(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not in PATH")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	const module = "github.com/offloadd/offloadd"
	allowed := map[string]bool{
		module + "/cmd/offloadctl":  true,
		module + "/api/offloadd/v1": true,
		module + "/api/flowfile":    true,
		module + "/api/tcsyntax":    true,
	}
	var own []string
	for _, d := range strings.Fields(string(out)) {
		if d == module || strings.HasPrefix(d, module+"/") {
			own = append(own, d)
			assert.True(t, allowed[d], "offloadctl depends on %s", d)
		}
		assert.NotContains(t, d, "netlink", "offloadctl depends on %s", d)
	}
	assert.Len(t, own, len(allowed))
}
