package world

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ocdn/ocdn/internal/config"
)

// InputError is bad input in a world, scenario or data file: which file,
// which line (0 when the whole file is at fault), which field and what is
// wrong with it.
type InputError struct {
	File    string
	Line    int
	Field   string
	Problem string

	column int // of a value the decoder refused, to find its field
}

func (e *InputError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// fieldErr is a validation failure before its file and line are known.
type fieldErr struct{ field, problem string }

func (e *fieldErr) Error() string { return e.field + ": " + e.problem }

// Errf returns a validation error for field (a path such as
// "sites[3].storage"); DecodeYAML turns it into an InputError with the
// file and the line of that field.
func Errf(field, format string, args ...any) error {
	return &fieldErr{field: field, problem: fmt.Sprintf(format, args...)}
}

// Validator is a type DecodeYAML can check after decoding.
type Validator interface{ Validate() error }

// DecodeYAML decodes data strictly (an unknown field is an error) into v
// and validates it; every error names the file, the line and the field.
func DecodeYAML(file string, data []byte, v Validator) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		ie := yamlError(file, err)
		if ie.Line > 0 && ie.Field == "" {
			var root yaml.Node
			if yaml.Unmarshal(data, &root) == nil {
				ie.Field = PathAt(&root, ie.Line, ie.column)
			}
		}
		return ie
	}
	err := v.Validate()
	if err == nil {
		return nil
	}
	var fe *fieldErr
	if !errors.As(err, &fe) {
		var ie *InputError
		if errors.As(err, &ie) {
			return err
		}
		return &InputError{File: file, Problem: err.Error()}
	}
	var root yaml.Node
	line := 0
	if yaml.Unmarshal(data, &root) == nil {
		line = LineOf(&root, fe.field)
	}
	return &InputError{File: file, Line: line, Field: fe.field, Problem: fe.problem}
}

// yamlError turns a decoder error ("yaml: unmarshal errors:\n  line 5:
// field x not found in type T") into an InputError with that line.
func yamlError(file string, err error) *InputError {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	line, column := 0, 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ":"); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, strings.TrimSpace(after)
			}
		}
	}
	if rest, ok := strings.CutPrefix(msg, "column "); ok {
		if n, after, ok := strings.Cut(rest, ":"); ok {
			if c, err := strconv.Atoi(n); err == nil {
				column, msg = c, strings.TrimSpace(after)
			}
		}
	}
	field := ""
	if f, ok := strings.CutPrefix(msg, "field "); ok {
		if name, _, ok := strings.Cut(f, " not found"); ok {
			field = name
			msg = "unknown field (check its spelling and the documentation in docs/sim.md)"
		}
	}
	return &InputError{File: file, Line: line, Field: field, Problem: msg, column: column}
}

// LineOf returns the line of the node at path ("a.b[2].c") under root, or
// of the deepest ancestor found; 0 when root is empty.
func LineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, seg := range splitPath(path) {
		var next *yaml.Node
		switch {
		case seg.index >= 0 && n.Kind == yaml.SequenceNode && seg.index < len(n.Content):
			next = n.Content[seg.index]
		case seg.index < 0 && n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg.key {
					next = n.Content[i+1]
					line = n.Content[i].Line
					break
				}
			}
		}
		if next == nil {
			return line
		}
		n = next
		if seg.index >= 0 || n.Kind == yaml.ScalarNode {
			line = n.Line
		}
	}
	return line
}

type pathSeg struct {
	key   string
	index int // ≥ 0 for [i]
}

func splitPath(path string) []pathSeg {
	var out []pathSeg
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key != "" {
			out = append(out, pathSeg{key: key, index: -1})
		}
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			if !ok {
				break
			}
			if i, err := strconv.Atoi(num); err == nil {
				out = append(out, pathSeg{index: i})
			}
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return out
}

// PathAt is the path ("a.b[2].c") of the scalar value at line and
// column (the first on the line when column is 0), or "".
func PathAt(root *yaml.Node, line, column int) string {
	at := func(v *yaml.Node) bool { return v.Line == line && (column == 0 || v.Column == column) }
	var walk func(n *yaml.Node, path string) string
	walk = func(n *yaml.Node, path string) string {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p := walk(c, path); p != "" {
					return p
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if v.Kind == yaml.ScalarNode && at(v) {
					return p
				}
				if r := walk(v, p); r != "" {
					return r
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Kind == yaml.ScalarNode && at(c) {
					return p
				}
				if r := walk(c, p); r != "" {
					return r
				}
			}
		}
		return ""
	}
	return walk(root, "")
}

// Size is a number of bytes that YAML gives as "2TB", "512GiB" or a
// number; a bad one is refused with its line.
type Size int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := config.ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: column %d: %v", n.Line, n.Column, err)
	}
	*s = Size(v)
	return nil
}

// MarshalYAML writes round sizes with a unit.
func (s Size) MarshalYAML() (any, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}} {
		if int64(s) >= u.mult && int64(s)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(s)/u.mult, u.suffix), nil
		}
	}
	return int64(s), nil
}
