package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/go-viper/mapstructure/v2"
)

// FieldError is one problem with a configuration, at one key. Load, Parse
// and Validate return every problem found, joined with errors.Join; use
// errors.As, or the Unwrap() []error of the joined error, to list them.
type FieldError struct {
	// Source is the file the configuration came from; may be empty.
	Source string
	// Key is the key path, e.g. "routes[2].service" or
	// "services.echo.timeouts.dial"; empty for a problem with the file as a
	// whole.
	Key string
	// Err says what is wrong.
	Err error
}

// Error returns "source: key: problem", leaving out empty parts.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the problem.
func (e *FieldError) Unwrap() error { return e.Err }

// problems collects FieldErrors for one source.
type problems struct {
	source string
	errs   []error
	keys   map[string]bool // keys with a problem already
}

// add records a problem at key.
func (p *problems) add(key string, err error) {
	if p.keys == nil {
		p.keys = map[string]bool{}
	}
	p.keys[key] = true
	p.errs = append(p.errs, &FieldError{Source: p.source, Key: key, Err: err})
}

func (p *problems) addf(key, format string, args ...any) {
	p.add(key, fmt.Errorf(format, args...))
}

func (p *problems) err() error { return errors.Join(p.errs...) }

// mapKeyIndex matches a mapstructure map index such as "[echo]"; list
// indexes ("[0]") are kept.
var mapKeyIndex = regexp.MustCompile(`\[([^\]]*[^\]0-9][^\]]*)\]`)

// keyPath turns a mapstructure field name ("services[echo].timeouts.dial")
// into a key path ("services.echo.timeouts.dial").
func keyPath(name string) string {
	return mapKeyIndex.ReplaceAllString(name, ".$1")
}

// addDecodeErrors adds one problem per leaf error of a mapstructure decode
// error, named by key path and reworded for people.
func (p *problems) addDecodeErrors(err error) {
	var de *mapstructure.DecodeError
	if !errors.As(err, &de) {
		p.add("", err)
		return
	}
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			p.addDecodeErrors(x)
		}
	case *mapstructure.DecodeError:
		inner := e.Unwrap()
		if errors.As(inner, &de) {
			p.addDecodeErrors(inner) // a nested field has the full name
			return
		}
		if key := keyPath(e.Name()); !p.keys[key] { // checkKeys may have seen it
			p.add(key, reword(inner))
		}
	case interface{ Unwrap() error }:
		p.addDecodeErrors(e.Unwrap()) // mapstructure's "decoding failed" wrapper
	default:
		p.add("", err)
	}
}

// reword replaces mapstructure's type errors by messages that speak of YAML
// values rather than Go types.
func reword(err error) error {
	var ut *mapstructure.UnconvertibleTypeError
	if errors.As(err, &ut) {
		return fmt.Errorf("expected %s, got %s", kindName(ut.Expected.Type()), describeValue(ut.Value))
	}
	var pe *mapstructure.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("expected %s, got %s", kindName(pe.Expected.Type()), describeValue(pe.Value))
	}
	return err
}

// kindName names the kind of value a Go type holds, in configuration terms.
func kindName(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration such as "2s"`
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "an integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Slice:
		return "a list"
	case t.Kind() == reflect.Map, t.Kind() == reflect.Struct, t.Kind() == reflect.Pointer:
		return "a mapping"
	default:
		return t.String()
	}
}

// describeValue describes a generic value for an error message.
func describeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("%q", x)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	default:
		return fmt.Sprintf("%v", x)
	}
}
