package flowfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"go.yaml.in/yaml/v3"
)

// Parse decodes every flow of data; see Decoder for the format.
func Parse(data []byte) ([]*v1.Flow, error) {
	d := NewDecoder(bytes.NewReader(data))
	var flows []*v1.Flow
	for {
		f, err := d.Next()
		if errors.Is(err, io.EOF) {
			return flows, nil
		}
		if err != nil {
			return nil, err
		}
		flows = append(flows, f)
	}
}

// Decoder reads flows one at a time. A YAML block list of flows, at the
// top or under "flows:", and a JSON list of flows, bare or under
// "flows", are read item by item, so memory stays bounded by the largest
// flow, not the file; any other document (a YAML flow list, a single
// flow) is read whole.
//
// The document is a list of flows, an object {"flows": [...]}, or one
// flow, in the protobuf JSON mapping of offloadd.v1.Flow. Everything
// means what it says: an id must be a string (id: 010 would be a number:
// quote it), numbers are plain decimal (dst_port: 0443 and 0x1bb are
// refused), string fields keep the text as written (eth_type: 0x0800 is
// "0x0800"), booleans are true or false, keys are not repeated, and
// nothing follows the document. Every error carries the line and column.
type Decoder struct {
	r          *bufio.Reader
	line       int // lines consumed
	index      int // flows returned
	state      decState
	seqIndent  int    // indentation of the "-" of each item (streaming)
	underFlows bool   // the list is the value of a top-level flows key
	pending    string // a line read ahead: the start of the next item
	whole      []*yaml.Node
	js         *jsonStream
	conv       converter
	done       bool
}

type decState uint8

const (
	stStart decState = iota
	stStream
	stWhole
	stJSON
	stEnd
)

// NewDecoder reads flows from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next flow, or io.EOF after the last one. Errors are
// *PosError wrapped with "parse flow file".
func (d *Decoder) Next() (*v1.Flow, error) {
	f, err := d.next()
	if err != nil && !errors.Is(err, io.EOF) {
		d.state = stEnd
		return nil, fmt.Errorf("parse flow file: %w", err)
	}
	return f, err
}

func (d *Decoder) next() (*v1.Flow, error) {
	if d.state == stStart {
		if err := d.start(); err != nil {
			return nil, err
		}
	}
	switch d.state {
	case stWhole:
		if len(d.whole) == 0 {
			d.state = stEnd
			return nil, io.EOF
		}
		n := d.whole[0]
		d.whole = d.whole[1:]
		d.conv.line = 0
		f, err := d.conv.flow(n, fmt.Sprintf("flows[%d]", d.index))
		d.index++
		return f, err
	case stStream:
		return d.nextItem()
	case stJSON:
		return d.nextJSON()
	}
	return nil, io.EOF
}

// readLine returns the next line without its newline, and false at EOF.
func (d *Decoder) readLine() (string, bool, error) {
	if d.done {
		return "", false, nil
	}
	s, err := d.r.ReadString('\n')
	if errors.Is(err, io.EOF) {
		d.done = true
		if s == "" {
			return "", false, nil
		}
	} else if err != nil {
		return "", false, fmt.Errorf("read line %d: %w", d.line+1, err)
	}
	d.line++
	return strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r"), true, nil
}

// insignificant lines are blank or only a comment.
func insignificant(l string) bool {
	t := strings.TrimLeft(l, " \t")
	return t == "" || t[0] == '#'
}

var (
	flowsKey = regexp.MustCompile(`^(flows|"flows"|'flows')[ \t]*:[ \t]*(#.*)?$`)
	itemRe   = regexp.MustCompile(`^( *)-( |$)`)
)

// start looks at the head of the document: a block list streams, anything
// else is read whole.
func (d *Decoder) start() error {
	var head []string
	for {
		l, ok, err := d.readLine()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		head = append(head, l)
		if insignificant(l) || l == "---" || strings.HasPrefix(l, "%") {
			continue
		}
		if t := strings.TrimLeft(l, " \t"); t[0] == '[' || t[0] == '{' {
			return d.startJSON(strings.Join(head, "\n") + "\n")
		}
		if m := itemRe.FindStringSubmatch(l); m != nil && len(m[1]) == 0 {
			d.state, d.seqIndent, d.pending = stStream, 0, l
			return nil
		}
		if flowsKey.MatchString(l) {
			// The list must follow on its own lines.
			for {
				l2, ok, err := d.readLine()
				if err != nil {
					return err
				}
				if !ok {
					return &PosError{Line: d.line, Column: 1, Path: "flows", Msg: "no flows"}
				}
				if insignificant(l2) {
					continue
				}
				if m := itemRe.FindStringSubmatch(l2); m != nil {
					d.state, d.seqIndent, d.pending, d.underFlows = stStream, len(m[1]), l2, true
					return nil
				}
				head = append(head, l2)
				break
			}
		}
		break
	}
	// Anything else: read the whole document.
	rest, err := io.ReadAll(d.r)
	if err != nil {
		return fmt.Errorf("read flow file: %w", err)
	}
	doc := strings.Join(head, "\n") + "\n" + string(rest)
	return d.parseWhole(doc)
}

func (d *Decoder) parseWhole(doc string) error {
	d.state = stWhole
	if t := strings.TrimLeft(doc, " \t\r\n"); t != "" && (t[0] == '[' || t[0] == '{') {
		if err := checkJSON(doc); err != nil {
			return err
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(doc))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return &PosError{Line: 1, Column: 1, Msg: "no flows"}
		}
		return yamlError(err, 0)
	}
	if err := noSecondDocument(dec); err != nil {
		return err
	}
	n := root.Content[0]
	switch {
	case isNull(n):
		return &PosError{Line: n.Line, Column: n.Column, Msg: "no flows"}
	case n.Kind == yaml.SequenceNode:
		d.whole = n.Content
	case n.Kind == yaml.MappingNode && hasKey(n, "flows"):
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Value != "flows" {
				return &PosError{Line: k.Line, Column: k.Column, Msg: fmt.Sprintf("unexpected key %q next to flows", k.Value)}
			}
			if i > 0 {
				return &PosError{Line: k.Line, Column: k.Column, Path: "flows", Msg: "given twice"}
			}
		}
		fl := n.Content[1]
		if fl.Kind != yaml.SequenceNode && !isNull(fl) {
			return &PosError{Line: fl.Line, Column: fl.Column, Path: "flows", Msg: "flows is not a list"}
		}
		if len(fl.Content) == 0 {
			return &PosError{Line: fl.Line, Column: fl.Column, Path: "flows", Msg: "no flows"}
		}
		d.whole = fl.Content
	case n.Kind == yaml.MappingNode:
		d.whole = []*yaml.Node{n}
	default:
		return &PosError{Line: n.Line, Column: n.Column, Msg: "want a list of flows or an object with a flows list"}
	}
	if len(d.whole) == 0 {
		return &PosError{Line: n.Line, Column: n.Column, Msg: "no flows"}
	}
	return nil
}

// checkJSON checks that a JSON document is one value and nothing after it
// (YAML's own error for that says "did not find expected <document
// start>", at no column).
func checkJSON(doc string) error {
	dec := json.NewDecoder(strings.NewReader(doc))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		// Not JSON after all (a YAML flow collection such as
		// {flows: [...]}), or broken JSON: YAML reads it, or says where
		// it stops.
		return nil
	}
	off := int(dec.InputOffset())
	rest := doc[off:]
	if t := strings.TrimLeft(rest, " \t\r\n"); t != "" {
		l, c := position(doc, off+len(rest)-len(t))
		return &PosError{Line: l, Column: c, Msg: "trailing data after the JSON document"}
	}
	return nil
}

// position is the line and column (from 1, in bytes) of offset in doc.
func position(doc string, offset int) (int, int) {
	offset = max(0, min(offset, len(doc)))
	before := doc[:offset]
	line := strings.Count(before, "\n") + 1
	return line, offset - strings.LastIndexByte(before, '\n')
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

func noSecondDocument(dec *yaml.Decoder) error {
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return yamlError(err, 0)
	default:
		at := &extra
		if len(extra.Content) > 0 {
			at = extra.Content[0]
		}
		return &PosError{Line: at.Line, Column: at.Column, Msg: "trailing data after the document: one document per file"}
	}
}

// nextItem reads the lines of the next list item and converts them.
func (d *Decoder) nextItem() (*v1.Flow, error) {
	if d.pending == "" {
		d.state = stEnd
		if d.index == 0 {
			return nil, &PosError{Line: d.line, Column: 1, Msg: "no flows"}
		}
		return nil, io.EOF
	}
	startLine := d.line // the pending line is line startLine
	var b strings.Builder
	b.WriteString(d.pending)
	b.WriteByte('\n')
	d.pending = ""
	for {
		l, ok, err := d.readLine()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if insignificant(l) {
			b.WriteString(l)
			b.WriteByte('\n')
			continue
		}
		indent := len(l) - len(strings.TrimLeft(l, " "))
		if indent > d.seqIndent {
			b.WriteString(l)
			b.WriteByte('\n')
			continue
		}
		if m := itemRe.FindStringSubmatch(l); m != nil && indent == d.seqIndent {
			d.pending = l
			break
		}
		// The list has ended: only document markers and nothing may follow.
		if err := d.trailer(l); err != nil {
			return nil, err
		}
		break
	}
	dec := yaml.NewDecoder(strings.NewReader(b.String()))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		return nil, yamlError(err, startLine-1)
	}
	if err := noSecondDocument(dec); err != nil {
		return nil, err
	}
	seq := root.Content[0]
	d.conv.line = startLine - 1
	if seq.Kind != yaml.SequenceNode || len(seq.Content) != 1 {
		return nil, &PosError{Line: startLine, Column: d.seqIndent + 1, Msg: "not a list item"}
	}
	f, err := d.conv.flow(seq.Content[0], fmt.Sprintf("flows[%d]", d.index))
	d.index++
	return f, err
}

// trailer checks what follows the list, starting with line l.
func (d *Decoder) trailer(l string) error {
	for {
		switch {
		case insignificant(l), l == "...":
		case l == "---":
			return &PosError{Line: d.line, Column: 1, Msg: "trailing data after the document: one document per file"}
		default:
			t := strings.TrimLeft(l, " ")
			col := len(l) - len(t) + 1
			if k, _, ok := strings.Cut(t, ":"); ok && d.underFlows && col == 1 {
				return &PosError{Line: d.line, Column: col, Msg: fmt.Sprintf("unexpected key %q next to flows", strings.TrimSpace(k))}
			}
			return &PosError{Line: d.line, Column: col, Msg: "trailing data after the list of flows"}
		}
		var ok bool
		var err error
		if l, ok, err = d.readLine(); err != nil || !ok {
			return err
		}
	}
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError turns a YAML syntax error into a PosError, its line moved by
// offset (the lines before the chunk that was parsed).
func yamlError(err error, offset int) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &PosError{Line: n + offset, Column: 1, Msg: strings.TrimPrefix(msg, m[0])}
	}
	return &PosError{Line: offset + 1, Column: 1, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// Read parses flows from r; name is used in errors.
func Read(r io.Reader, name string) ([]*v1.Flow, error) {
	d := NewDecoder(r)
	var flows []*v1.Flow
	for {
		f, err := d.Next()
		if errors.Is(err, io.EOF) {
			return flows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		flows = append(flows, f)
	}
}

// ReadFile parses the flow file at path.
func ReadFile(path string) ([]*v1.Flow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open flow file: %w", err)
	}
	defer f.Close()
	return Read(f, path)
}
