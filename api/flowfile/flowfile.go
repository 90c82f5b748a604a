package flowfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	v1 "github.com/offloadd/offloadd/api/offloadd/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"
)

// Parse decodes flows from YAML or JSON in the protobuf JSON mapping. The
// document is a list of flows, an object {"flows": [...]}, or one flow.
// Unknown fields are errors. Numbers given for string fields (eth_type:
// 0x0800, ip_proto: 6) are taken as their decimal text.
func Parse(data []byte) ([]*v1.Flow, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parse flow file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse flow file: %w", err)
	}
	var items []any
	switch d := doc.(type) {
	case nil:
		return nil, errors.New("parse flow file: no flows")
	case []any:
		items = d
	case map[string]any:
		if fl, ok := d["flows"]; ok {
			for k := range d {
				if k != "flows" {
					return nil, fmt.Errorf("parse flow file: unexpected key %q next to flows", k)
				}
			}
			list, ok := fl.([]any)
			if !ok && fl != nil {
				return nil, errors.New("parse flow file: flows is not a list")
			}
			items = list
		} else {
			items = []any{d}
		}
	default:
		return nil, errors.New("parse flow file: want a list of flows or an object with a flows list")
	}
	if len(items) == 0 {
		return nil, errors.New("parse flow file: no flows")
	}
	desc := (&v1.Flow{}).ProtoReflect().Descriptor()
	flows := make([]*v1.Flow, 0, len(items))
	for i, it := range items {
		if _, ok := it.(map[string]any); !ok {
			return nil, fmt.Errorf("parse flow file: flows[%d]: not an object", i)
		}
		c, err := coerce(it, desc, fmt.Sprintf("flows[%d]", i))
		if err != nil {
			return nil, fmt.Errorf("parse flow file: %w", err)
		}
		b, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("parse flow file: flows[%d]: %w", i, err)
		}
		f := &v1.Flow{}
		if err := protojson.Unmarshal(b, f); err != nil {
			return nil, fmt.Errorf("parse flow file: flows[%d]%s: %w", i, idNote(it), err)
		}
		flows = append(flows, f)
	}
	return flows, nil
}

// idNote names a flow by its id for error messages, when it has one.
func idNote(it any) string {
	if m, ok := it.(map[string]any); ok {
		if id, ok := m["id"].(string); ok && id != "" {
			return fmt.Sprintf(" (id %q)", id)
		}
	}
	return ""
}

// coerce walks a decoded JSON value along message descriptor md and turns
// numbers into strings where the schema wants a string. YAML 1.1 reads
// y/n/yes/no/on/off as booleans, which cannot be turned back into the text
// the user wrote: for string fields those are errors asking for quotes.
func coerce(v any, md protoreflect.MessageDescriptor, path string) (any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return v, nil
	}
	for k, val := range m {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByTextName(k)
		}
		if fd == nil {
			continue // protojson reports the unknown field
		}
		p := path + "." + string(fd.Name())
		if fd.IsMap() {
			continue
		}
		if list, ok := val.([]any); ok && fd.IsList() {
			for i := range list {
				c, err := coerceValue(list[i], fd, fmt.Sprintf("%s[%d]", p, i))
				if err != nil {
					return nil, err
				}
				list[i] = c
			}
			continue
		}
		c, err := coerceValue(val, fd, p)
		if err != nil {
			return nil, err
		}
		m[k] = c
	}
	return m, nil
}

func coerceValue(v any, fd protoreflect.FieldDescriptor, path string) (any, error) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		switch x := v.(type) {
		case json.Number:
			return x.String(), nil
		case bool:
			return nil, fmt.Errorf("%s: YAML read the value as boolean %t; put it in quotes", path, x)
		}
	case protoreflect.MessageKind:
		return coerce(v, fd.Message(), path)
	}
	return v, nil
}

// Read parses flows from r; name is used in errors.
func Read(r io.Reader, name string) ([]*v1.Flow, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read flow file %s: %w", name, err)
	}
	flows, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return flows, nil
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
