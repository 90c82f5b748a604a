package flowfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"go.yaml.in/yaml/v3"
)

// jsonStream reads a JSON list of flows, bare or under "flows", one flow
// at a time: encoding/json finds each flow's bytes, which are then walked
// as YAML nodes like any other flow.
type jsonStream struct {
	cr  *countingReader
	dec *json.Decoder
	// flowsKey: the list is the value of {"flows": ...}, whose closing
	// brace must follow it.
	flowsKey bool
	listOff  int64 // where the list starts
	// whole reads the document whole instead (it is YAML after all).
	whole func() error
}

// countingReader keeps the bytes read since the start of the current
// flow, so that offsets map to lines and columns with bounded memory.
type countingReader struct {
	r     io.Reader
	buf   []byte // bytes from offset base on
	base  int64
	lines int // newlines before base
	col0  int // bytes between the last newline before base and base
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.buf = append(c.buf, p[:n]...)
	return n, err
}

// position is the line and column (from 1) of offset off >= base.
func (c *countingReader) position(off int64) (int, int) {
	i := int(min(max(off-c.base, 0), int64(len(c.buf))))
	before := c.buf[:i]
	nl := bytes.Count(before, []byte{'\n'})
	if nl == 0 {
		return c.lines + 1, c.col0 + i + 1
	}
	return c.lines + nl + 1, i - bytes.LastIndexByte(before, '\n')
}

// forget drops the bytes before off.
func (c *countingReader) forget(off int64) {
	i := int(min(max(off-c.base, 0), int64(len(c.buf))))
	gone := c.buf[:i]
	if nl := bytes.Count(gone, []byte{'\n'}); nl > 0 {
		c.lines += nl
		c.col0 = len(gone) - bytes.LastIndexByte(gone, '\n') - 1
	} else {
		c.col0 += len(gone)
	}
	c.buf = append(c.buf[:0], c.buf[i:]...)
	c.base = off
}

func (s *jsonStream) errAt(off int64, format string, args ...any) error {
	l, c := s.cr.position(off)
	return &PosError{Line: l, Column: c, Msg: fmt.Sprintf(format, args...)}
}

// jsonErr gives a decoding error its place.
func (s *jsonStream) jsonErr(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return s.errAt(se.Offset, "invalid JSON: %v", se)
	case errors.As(err, &te):
		return s.errAt(te.Offset, "invalid JSON: %v", te)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return s.errAt(s.dec.InputOffset()+int64(s.dec.Buffered().(*bytes.Reader).Len()), "invalid JSON: the document ends early")
	}
	return fmt.Errorf("read flow file: %w", err)
}

// quotedKey reports whether the list's first item starts as a JSON object
// does, {"key": — as opposed to YAML's {key:.
func (s *jsonStream) quotedKey() bool {
	i := int(s.listOff-s.cr.base) + 1
	if i < 0 || i > len(s.cr.buf) {
		return false
	}
	rest := bytes.TrimLeft(s.cr.buf[i:], " \t\r\n")
	if len(rest) == 0 || rest[0] != '{' {
		return false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	return len(rest) > 0 && rest[0] == '"'
}

// startJSON begins a document that starts with [ or {: head is what has
// been read of it. A list of flows, bare or under "flows", is streamed;
// anything else (one flow, YAML flow style) is read whole.
func (d *Decoder) startJSON(head string) error {
	cr := &countingReader{r: io.MultiReader(bytes.NewReader([]byte(head)), d.r)}
	s := &jsonStream{cr: cr, dec: json.NewDecoder(cr)}
	whole := func() error {
		if _, err := io.ReadAll(cr); err != nil { // kept in cr.buf
			return fmt.Errorf("read flow file: %w", err)
		}
		return d.parseWhole(string(cr.buf))
	}
	s.whole = whole
	tok, err := s.dec.Token()
	if err != nil {
		return whole()
	}
	if tok == json.Delim('{') {
		key, err := s.dec.Token()
		if err != nil || key != "flows" {
			return whole() // one flow, or not JSON
		}
		if tok, err = s.dec.Token(); err != nil || tok != json.Delim('[') {
			return whole() // reported there: flows is not a list
		}
		s.flowsKey = true
	}
	s.listOff = s.dec.InputOffset() - 1
	d.state, d.js = stJSON, s
	return nil
}

func (d *Decoder) nextJSON() (*v1.Flow, error) {
	s := d.js
	if !s.dec.More() {
		return nil, d.endJSON()
	}
	var raw json.RawMessage
	if err := s.dec.Decode(&raw); err != nil {
		var se *json.SyntaxError
		if d.index == 0 && errors.As(err, &se) && !s.quotedKey() {
			// Not JSON: a YAML flow list ([{id: a}]); nothing has
			// been forgotten yet, so it can be read whole.
			if err := s.whole(); err != nil {
				return nil, err
			}
			return d.next()
		}
		return nil, s.jsonErr(err)
	}
	end := s.dec.InputOffset()
	start := end - int64(len(raw))
	line, col := s.cr.position(start)
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, yamlError(err, line-1)
	}
	d.conv.line, d.conv.col = line-1, col-1
	f, err := d.conv.flow(root.Content[0], fmt.Sprintf("flows[%d]", d.index))
	d.conv.col = 0
	d.index++
	s.cr.forget(end)
	return f, err
}

// endJSON checks the end of the list, of {"flows": ...}, and that
// nothing follows.
func (d *Decoder) endJSON() error {
	s := d.js
	d.state = stEnd
	if _, err := s.dec.Token(); err != nil { // ]
		return s.jsonErr(err)
	}
	if d.index == 0 {
		return s.errAt(s.listOff, "no flows")
	}
	if s.flowsKey {
		if s.dec.More() {
			off := s.dec.InputOffset()
			key, err := s.dec.Token()
			if err != nil {
				return s.jsonErr(err)
			}
			if key == "flows" {
				return s.errAt(off+1, "flows: given twice")
			}
			return s.errAt(off+1, "unexpected key %q next to flows", key)
		}
		if _, err := s.dec.Token(); err != nil { // }
			return s.jsonErr(err)
		}
	}
	off := s.dec.InputOffset()
	if _, err := s.dec.Token(); !errors.Is(err, io.EOF) {
		rest := s.cr.buf[min(int(off-s.cr.base), len(s.cr.buf)):]
		skip := len(rest) - len(bytes.TrimLeft(rest, " \t\r\n"))
		return s.errAt(off+int64(skip), "trailing data after the JSON document")
	}
	return io.EOF
}
