package flowfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
`, []string{`{"id":"num","port":"p","priority":1,"match":{"eth_type":"0x0800","ip_proto":"6","tunnel":{"src":"10.0.0.1"}},
			"actions":[{"vlan_push":{"id":5,"proto":"0x88a8"}},{"rewrite":{"ipv4_dst":"10.1.1.1"}},
			{"police":{"rate_bytes_per_sec":"18446744073709551615","burst":10}},{"drop":{}}]}`}},
		{"flows key with comments and indented list", `# tenant flows
flows:   # all of them

  # the first
  - id: "010"
    port: p
    priority: 1
    actions: [{drop: {}}]
  - id: 'x'
    port: p
    priority: 2
    actions:
    - drop: {}
...
`, []string{`{"id":"010","port":"p","priority":1,"actions":[{"drop":{}}]}`, `{"id":"x","port":"p","priority":2,"actions":[{"drop":{}}]}`}},
		{"quoted decimal number", "- {id: q, port: p, priority: \"7\", actions: [{drop: {}}]}\n",
			[]string{`{"id":"q","port":"p","priority":7,"actions":[{"drop":{}}]}`}},
		{"json flows object across lines", "{\"flows\": [\n" + dropRest + "\n]}\n", []string{dropRest}},
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
	const okFlow = "  port: p\n  priority: 1\n  actions: [{drop: {}}]\n"
	tests := []struct {
		name, in, want string
	}{
		{"empty", ``, "no flows"},
		{"empty list", `[]`, "1:1: no flows"},
		{"empty flows", `flows: []`, "1:8: flows: no flows"},
		{"flows key and nothing", "flows:\n", "no flows"},
		{"scalar", `42`, "1:1: want a list of flows"},
		{"flows not a list", `flows: {id: x}`, "1:8: flows: flows is not a list"},
		{"extra key", `{flows: [], atomic: true}`, `1:13: unexpected key "atomic" next to flows`},
		{"extra key after a streamed list", "flows:\n- id: a\n" + okFlow + "atomic: true\n", `6:1: unexpected key "atomic" next to flows`},
		{"item not an object", `[1]`, "1:2: flows[0]: not an object"},
		{"unknown field", "- id: a\n  port: p\n  prio: 1\n", `3:3: flows[0]: unknown field "prio" in Flow`},
		{"unknown nested field", "- id: a\n  match: {ipv4_dest: 10.0.0.1}\n", `2:11: flows[0].match: unknown field "ipv4_dest" in Match`},
		{"bad enum", "- policy: SOMETIMES\n", "1:11: flows[0].policy: unknown value \"SOMETIMES\"; want one of PLACEMENT_POLICY_AUTO, PLACEMENT_POLICY_HARDWARE_ONLY"},
		{"bad yaml", "- id: [\n", "parse flow file: 1:1: did not find expected node content"},
		{"bad yaml in a later item", "- id: a\n" + okFlow + "- id: [\n", "parse flow file: 5:1: did not find expected node content"},
		{"wrong type", "- priority: high\n", "1:13: flows[0].priority: high is not a whole decimal number"},
		{"yaml 1.1 boolean for an id", "- id: n\n", `1:7: flows[0].id: YAML 1.1 reads n as a boolean; quote it: "n"`},
		{"yaml boolean in an action", "- actions: [{redirect: {port: on}}]\n", `1:31: flows[0].actions[0].redirect.port: YAML 1.1 reads on as a boolean; quote it: "on"`},
		{"octal-looking id", "- id: 010\n" + okFlow, `1:7: flows[0].id: 010 reads as a number, not as the text you wrote; quote it: id: "010"`},
		{"hex id", "- id: 0x1F\n" + okFlow, `1:7: flows[0].id: 0x1F reads as a number, not as the text you wrote; quote it: id: "0x1F"`},
		{"exponent id", "- id: 1e3\n" + okFlow, `1:7: flows[0].id: 1e3 reads as a floating-point number, not as the text you wrote; quote it: id: "1e3"`},
		{"null id", "- id: ~\n" + okFlow, ""},
		{"id in a later item", "- id: a\n" + okFlow + "- id: 7\n" + okFlow, `5:7: flows[1].id: 7 reads as a number`},
		{"leading zero port", "- id: a\n  match: {eth_type: ipv4, ip_proto: tcp, dst_port: 0443}\n",
			"2:52: flows[0].match.dst_port: 0443 has a leading zero, which some YAML readers take as octal; write 443 (numbers are decimal)"},
		{"hex port", "- id: a\n  match: {dst_port: 0x1bb}\n", "2:21: flows[0].match.dst_port: 0x1bb is not decimal; write numbers in decimal"},
		{"negative chain", "- id: a\n  chain: -1\n", "2:10: flows[0].chain: -1 is negative; want 0 or more"},
		{"float priority", "- id: a\n  priority: 1.5\n", "2:13: flows[0].priority: 1.5 is not a whole decimal number"},
		{"duplicate key", "- id: a\n  port: p\n  port: q\n", "3:3: flows[0].port: given twice (first at line 2)"},
		{"duplicate key by two names", "- id: a\n  match: {ip_proto: tcp, ipProto: udp}\n", "2:26: flows[0].match.ip_proto: given twice (first at line 2)"},
		{"json trailing data", `[{"id":"a"}] {"id":"b"}`, "1:14: trailing data after the JSON document"},
		{"json trailing data on a later line", "{\"id\":\"a\"}\n\n  {\"id\":\"b\"}\n", "3:3: trailing data after the JSON document"},
		{"json syntax error", "[{\"id\":\"a\",\n \"port\" \"p\"}]", "parse flow file: 2:9: invalid JSON: invalid character '\"' after object key"},
		{"json error in a later flow", "{\"flows\": [\n" + `{"id":"a","port":"p","priority":1},` + "\n" + `{"id":"b","port":"p","priority":1},` + "\n" + `{"id":7,"port":"p"}` + "\n]}",
			"4:7: flows[2].id: 7 reads as a number, not as the text you wrote; quote it"},
		{"json error mid-line", `[{"id":"a"}, {"id":"b","chain":-1}]`, "1:32: flows[1].chain: -1 is negative"},
		{"json key next to flows", `{"flows":[{"id":"a"}],"atomic":true}`, `1:23: unexpected key "atomic" next to flows`},
		{"json flows twice", `{"flows":[{"id":"a"}],"flows":[]}`, "1:23: flows: given twice"},
		{"json broken in a later flow", "[{\"id\":\"a\"},\n {\"id\" \"b\"}]", ": 2:"},
		{"json duplicate key", "[{\"id\":\"a\",\"id\":\"b\"}]", "1:12: flows[0].id: given twice (first at line 1)"},
		{"second yaml document", "- id: a\n" + okFlow + "---\n- id: b\n", "5:1: trailing data after the document: one document per file"},
		{"second document of a whole file", "[{id: a}]\n---\n[{id: b}]\n", "3:1: trailing data after the document: one document per file"},
		{"bool field", "- id: a\n  actions: [{ct: {commit: yes}}]\n", "2:27: flows[0].actions[0].ct.commit: want true or false, not yes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if tt.want == "" {
				// null is "not given": the daemon reports the missing id.
				require.NoError(t, err)
				return
			}
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
	assert.EqualError(t, err, "stdin: parse flow file: 1:1: no flows")
}

// wholeParse reads data as one document, the way non-streamed files are
// read, for comparing with the streamed reading.
func wholeParse(data []byte) ([]*v1.Flow, error) {
	d := NewDecoder(strings.NewReader(""))
	if err := d.parseWhole(string(data)); err != nil {
		return nil, err
	}
	var out []*v1.Flow
	for {
		f, err := d.Next()
		if err != nil {
			if err.Error() == "EOF" {
				return out, nil
			}
			return nil, err
		}
		out = append(out, f)
	}
}

func TestStreamedAndWholeAgree(t *testing.T) {
	in := "flows:\n" + strings.Repeat("- id: a\n  port: p\n  priority: 1\n  match: {eth_type: 0x0800, dst_port: 80, ip_proto: tcp}\n  actions:\n  - drop: {}\n", 3)
	a, err := Parse([]byte(in))
	require.NoError(t, err)
	b, err := wholeParse([]byte(in))
	require.NoError(t, err)
	require.Len(t, a, 3)
	for i := range a {
		assert.True(t, proto.Equal(a[i], b[i]))
	}
}

// FuzzParse: the decoder never panics, and where a streamed file and the
// same file read whole both parse, they give the same flows.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"- id: a\n  port: p\n  priority: 1\n  actions: [{drop: {}}]\n",
		"flows:\n  - id: a\n    chain: 2\n    match: {dst_port: 443, ip_proto: tcp}\n  - id: b\n",
		`[{"id":"a","priority":3}]`, `{"flows": [{"id":"a"},
 {"id":"b","chain":2}]}`,
		"- id: 010\n", "- {id: x, port: on}\n- id: y\n---\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				panic(fmt.Sprintf("Parse(%q) takes more than 5s", data))
			}
		}()
		a, errA := Parse(data)
		b, errB := wholeParse(data)
		if errA != nil || errB != nil {
			return
		}
		require.Len(t, a, len(b))
		for i := range a {
			require.True(t, proto.Equal(a[i], b[i]), "flow %d:\nstreamed %v\n   whole %v", i, a[i], b[i])
		}
	})
}
