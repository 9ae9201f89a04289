// Package config provides the typed configuration of ocdn's daemons and
// labs, strict YAML loading (unknown fields are errors), and validation
// errors that name the file, the field and the problem.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError says which field of which file is wrong and why.
type FieldError struct {
	File    string
	Field   string
	Problem string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// Errf returns a FieldError for field with a formatted problem; Load fills
// in the file name.
func Errf(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Validator is implemented by every config type.
type Validator interface{ Validate() error }

// Decode strictly decodes YAML into v and validates it; name is used in
// errors (usually the file name).
func Decode(name string, data []byte, v Validator) error {
	if err := decode(name, data, v); err != nil {
		return err
	}
	return validate(name, v)
}

func decode(name string, data []byte, v Validator) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: the file is empty", name)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func validate(name string, v Validator) error {
	if err := v.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) && fe.File == "" {
			fe.File = name
			return err
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Load reads a YAML file into v and validates it. Relative file names in
// the config (a catalog, a key file, a store directory) are taken from the
// config file's directory, so a directory of configs can move as a whole.
func Load(path string, v Validator) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := decode(path, data, v); err != nil {
		return err
	}
	if r, ok := v.(pathResolver); ok {
		r.resolvePaths(filepath.Dir(path))
	}
	return validate(path, v)
}

// pathResolver is implemented by configs that name other files.
type pathResolver interface{ resolvePaths(dir string) }
