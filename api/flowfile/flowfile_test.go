package flowfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func flowJSON(t *testing.T, js string) *v1.Flow {
	t.Helper()
	f := &v1.Flow{}
	require.NoError(t, protojson.Unmarshal([]byte(js), f))
	return f
}

func TestParse(t *testing.T) {
	webIn := `{"id":"web-in","port":"pf0vf1","priority":10,
		"match":{"eth_type":"ipv4","ip_proto":"tcp","ipv4_dst":"10.0.0.5","dst_port":443},
		"actions":[{"redirect":{"port":"pf0vf2"}}]}`
	dropRest := `{"id":"drop-rest","port":"pf0vf1","priority":100,"policy":"PLACEMENT_POLICY_HARDWARE_ONLY","actions":[{"drop":{}}]}`
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"yaml flows object", `
flows:
- id: web-in
  port: pf0vf1
  priority: 10
  match: {eth_type: ipv4, ip_proto: tcp, ipv4_dst: 10.0.0.5, dst_port: 443}
  actions:
  - redirect: {port: pf0vf2}
- id: drop-rest
  port: pf0vf1
  priority: 100
  policy: PLACEMENT_POLICY_HARDWARE_ONLY
  actions: [{drop: {}}]
`, []string{webIn, dropRest}},
		{"yaml list", `
- id: drop-rest
  port: pf0vf1
  priority: 100
  policy: 1
  actions:
  - drop: {}
`, []string{dropRest}},
		{"json list", "[" + webIn + "," + dropRest + "]", []string{webIn, dropRest}},
		{"json flows object", `{"flows":[` + dropRest + `]}`, []string{dropRest}},
		{"single flow", dropRest, []string{dropRest}},
		{"camelCase names", `{"id":"x","port":"p","priority":1,"match":{"ethType":"ipv4","ipProto":"udp","dstPort":53},"actions":[{"drop":{}}]}`,
			[]string{`{"id":"x","port":"p","priority":1,"match":{"eth_type":"ipv4","ip_proto":"udp","dst_port":53},"actions":[{"drop":{}}]}`}},
		{"numbers for string fields", `
- id: num
  port: p
  priority: 1
  match: {eth_type: 0x0800, ip_proto: 6, tunnel: {src: 10.0.0.1}}
  actions:
  - vlan_push: {id: 5, proto: 0x88a8}
  - rewrite: {ipv4_dst: 10.1.1.1}
  - police: {rate_bytes_per_sec: 18446744073709551615, burst: 10}
  - drop: {}
`, []string{`{"id":"num","port":"p","priority":1,"match":{"eth_type":"2048","ip_proto":"6","tunnel":{"src":"10.0.0.1"}},
			"actions":[{"vlan_push":{"id":5,"proto":"34984"}},{"rewrite":{"ipv4_dst":"10.1.1.1"}},
			{"police":{"rate_bytes_per_sec":"18446744073709551615","burst":10}},{"drop":{}}]}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			require.NoError(t, err)
			require.Len(t, got, len(tt.want))
			for i, w := range tt.want {
				want := flowJSON(t, w)
				assert.True(t, proto.Equal(want, got[i]), "flow %d:\nwant %v\n got %v", i, want, got[i])
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", ``, "no flows"},
		{"empty list", `[]`, "no flows"},
		{"empty flows", `flows: []`, "no flows"},
		{"scalar", `42`, "want a list of flows"},
		{"flows not a list", `flows: {id: x}`, "flows is not a list"},
		{"extra key", `{flows: [], atomic: true}`, `unexpected key "atomic" next to flows`},
		{"item not an object", `[1]`, "flows[0]: not an object"},
		{"unknown field", "- id: a\n  port: p\n  prio: 1\n", `flows[0] (id "a"): `},
		{"unknown nested field", "- id: a\n  match: {ipv4_dest: 10.0.0.1}\n", `flows[0] (id "a"): `},
		{"bad enum", "- policy: SOMETIMES\n", "flows[0]: "},
		{"bad yaml", "- id: [\n", "parse flow file"},
		{"wrong type", "- priority: high\n", "flows[0]: "},
		{"yaml boolean for a string", "- id: n\n", "flows[0].id: YAML read the value as boolean false; put it in quotes"},
		{"yaml boolean in an action", "- actions: [{redirect: {port: on}}]\n", "flows[0].actions[0].redirect.port: YAML read the value as boolean true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flows.yaml")
	require.NoError(t, os.WriteFile(path, []byte("- id: a\n  port: p\n  priority: 1\n  actions: [{accept: {}}]\n"), 0o600))
	flows, err := ReadFile(path)
	require.NoError(t, err)
	require.Len(t, flows, 1)
	assert.Equal(t, "a", flows[0].GetId())
	assert.NotNil(t, flows[0].GetActions()[0].GetAccept())

	_, err = ReadFile(filepath.Join(dir, "missing.yaml"))
	assert.ErrorContains(t, err, "open flow file")

	_, err = Read(strings.NewReader("[]"), "stdin")
	assert.EqualError(t, err, "stdin: parse flow file: no flows")
}
