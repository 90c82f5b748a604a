package flowfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// PosError is a problem at a place in the file: Line and Column count
// from 1; Path is the field ("flows[3].match.dst_port"), "" for the
// document itself.
type PosError struct {
	Line, Column int
	Path         string
	Msg          string
}

func (e *PosError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%d:%d: %s: %s", e.Line, e.Column, e.Path, e.Msg)
}

// converter turns one flow's YAML node into the protobuf JSON mapping,
// checking what protojson cannot see once YAML has been read: the text as
// written, duplicate keys, and where everything is.
type converter struct {
	line int // added to node lines: the line before the node's chunk
	col  int // added to the columns of the chunk's first line
	buf  bytes.Buffer
}

func (c *converter) errAt(n *yaml.Node, path, format string, args ...any) error {
	col := n.Column
	if n.Line == 1 {
		col += c.col
	}
	return &PosError{Line: n.Line + c.line, Column: col, Path: path, Msg: fmt.Sprintf(format, args...)}
}

var flowDesc = (&v1.Flow{}).ProtoReflect().Descriptor()

// flow converts the mapping n into a Flow.
func (c *converter) flow(n *yaml.Node, path string) (*v1.Flow, error) {
	if n.Kind != yaml.MappingNode {
		return nil, c.errAt(n, path, "not an object: a flow is a mapping of id, port, priority, match and actions")
	}
	c.buf.Reset()
	if err := c.message(n, flowDesc, path); err != nil {
		return nil, err
	}
	f := &v1.Flow{}
	if err := protojson.Unmarshal(c.buf.Bytes(), f); err != nil {
		return nil, c.errAt(n, path, "%v", err)
	}
	return f, nil
}

func (c *converter) message(n *yaml.Node, md protoreflect.MessageDescriptor, path string) error {
	if isNull(n) {
		c.buf.WriteString("null")
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return c.errAt(n, path, "want an object (a mapping) for %s, not %s", md.Name(), describe(n))
	}
	seen := make(map[protoreflect.FieldNumber]*yaml.Node, len(n.Content)/2)
	c.buf.WriteByte('{')
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return c.errAt(k, path, "a key must be a plain name")
		}
		fd := md.Fields().ByJSONName(k.Value)
		if fd == nil {
			fd = md.Fields().ByTextName(k.Value)
		}
		if fd == nil {
			return c.errAt(k, path, "unknown field %q in %s", k.Value, md.Name())
		}
		p := joinPath(path, string(fd.Name()))
		if prev, dup := seen[fd.Number()]; dup {
			return c.errAt(k, p, "given twice (first at line %d)", prev.Line+c.line)
		}
		seen[fd.Number()] = k
		if i > 0 {
			c.buf.WriteByte(',')
		}
		c.str(string(fd.Name()))
		c.buf.WriteByte(':')
		if err := c.field(v, fd, p); err != nil {
			return err
		}
	}
	c.buf.WriteByte('}')
	return nil
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func (c *converter) field(v *yaml.Node, fd protoreflect.FieldDescriptor, path string) error {
	if fd.IsMap() {
		return c.errAt(v, path, "map fields are not supported in flow files")
	}
	if !fd.IsList() {
		return c.value(v, fd, path)
	}
	if isNull(v) {
		c.buf.WriteString("null")
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		return c.errAt(v, path, "want a list, not %s", describe(v))
	}
	c.buf.WriteByte('[')
	for i, e := range v.Content {
		if i > 0 {
			c.buf.WriteByte(',')
		}
		if err := c.value(e, fd, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	c.buf.WriteByte(']')
	return nil
}

var (
	decimal = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)
	// yaml11Bool are the words YAML 1.1 readers (sigs.k8s.io/yaml,
	// kubectl, PyYAML) take as booleans; go.yaml.in/yaml/v3 reads most as
	// strings. A string field written that way means different things
	// to different tools, so it must be quoted.
	yaml11Bool = map[string]bool{"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "n": true, "N": true,
		"no": true, "No": true, "NO": true, "on": true, "On": true, "ON": true, "off": true, "Off": true, "OFF": true,
		"true": true, "True": true, "TRUE": true, "false": true, "False": true, "FALSE": true}
)

func (c *converter) value(v *yaml.Node, fd protoreflect.FieldDescriptor, path string) error {
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		return c.message(v, fd.Message(), path)
	}
	if v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	if v.Kind != yaml.ScalarNode {
		return c.errAt(v, path, "want a single value, not %s", describe(v))
	}
	if isNull(v) {
		c.buf.WriteString("null")
		return nil
	}
	plain := v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0
	text := v.Value
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		if plain && fd.Name() == "id" && v.Tag != "!!str" {
			return c.errAt(v, path, "%s reads as %s, not as the text you wrote; quote it: id: %q", text, typeName(v.Tag), text)
		}
		if plain && yaml11Bool[text] {
			return c.errAt(v, path, "YAML 1.1 reads %s as a boolean; quote it: %q", text, text)
		}
		c.str(text)
	case protoreflect.BoolKind:
		if v.Tag != "!!bool" || (text != "true" && text != "false") {
			return c.errAt(v, path, "want true or false, not %s", text)
		}
		c.buf.WriteString(text)
	case protoreflect.EnumKind:
		if decimal.MatchString(text) {
			c.buf.WriteString(text)
			break
		}
		if fd.Enum().Values().ByName(protoreflect.Name(text)) == nil {
			return c.errAt(v, path, "unknown value %q; want one of %s", text, enumNames(fd.Enum()))
		}
		c.str(text)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if _, err := strconv.ParseFloat(text, 64); err != nil || strings.ContainsAny(text, "xX_") {
			return c.errAt(v, path, "%s is not a decimal number", text)
		}
		c.buf.WriteString(text)
	default: // integers
		if err := checkInteger(text, fd); err != "" {
			return c.errAt(v, path, "%s", err)
		}
		c.buf.WriteString(text)
	}
	return nil
}

// checkInteger says why text is not a decimal integer for fd, "" when it
// is one. YAML would read 0443 as octal 291 (1.1) or decimal 443 (1.2)
// and 0x1F as 31: a flow file says every number in plain decimal.
func checkInteger(text string, fd protoreflect.FieldDescriptor) string {
	if decimal.MatchString(text) {
		if strings.HasPrefix(text, "-") {
			switch fd.Kind() {
			case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
				return fmt.Sprintf("%s is negative; want 0 or more", text)
			}
		}
		return ""
	}
	digits := strings.TrimLeft(text, "+-")
	switch {
	case len(digits) > 1 && digits[0] == '0' && strings.Trim(digits, "0123456789") == "":
		return fmt.Sprintf("%s has a leading zero, which some YAML readers take as octal; write %s (numbers are decimal)",
			text, strings.TrimLeft(digits, "0"))
	case strings.HasPrefix(digits, "0x"), strings.HasPrefix(digits, "0X"), strings.HasPrefix(digits, "0o"), strings.HasPrefix(digits, "0b"):
		return fmt.Sprintf("%s is not decimal; write numbers in decimal", text)
	}
	return fmt.Sprintf("%s is not a whole decimal number", text)
}

func (c *converter) str(s string) {
	b, _ := json.Marshal(s) // a string always marshals
	c.buf.Write(b)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func typeName(tag string) string {
	switch tag {
	case "!!int":
		return "a number"
	case "!!float":
		return "a floating-point number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	case "!!timestamp":
		return "a timestamp"
	}
	return strings.TrimPrefix(tag, "!!")
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

func enumNames(ed protoreflect.EnumDescriptor) string {
	vs := ed.Values()
	names := make([]string, vs.Len())
	for i := range vs.Len() {
		names[i] = string(vs.Get(i).Name())
	}
	return strings.Join(names, ", ")
}
