package config

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"
)

// This file walks the configuration structs by their mapstructure tags: to
// turn the defaults into maps, to list the keys that environment variables
// override, and to find unknown keys in what the file gives.

var durationType = reflect.TypeFor[time.Duration]()

// tagName returns the configuration key of a struct field, "" for fields
// that are not configuration keys.
func tagName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// toMap converts a configuration value into the generic form the YAML
// decoder produces: structs and maps become map[string]any keyed by tag,
// slices []any, durations their string form. Nil pointers are left out.
func toMap(v reflect.Value) any {
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return toMap(v.Elem())
	case v.Kind() == reflect.Struct:
		m := map[string]any{}
		for i := range v.NumField() {
			name := tagName(v.Type().Field(i))
			if name == "" {
				continue
			}
			if x := toMap(v.Field(i)); x != nil {
				m[name] = x
			}
		}
		return m
	case v.Kind() == reflect.Map:
		m := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			m[fmt.Sprint(it.Key().Interface())] = toMap(it.Value())
		}
		return m
	case v.Kind() == reflect.Slice:
		s := make([]any, v.Len())
		for i := range s {
			s[i] = toMap(v.Index(i))
		}
		return s
	default:
		return v.Interface()
	}
}

// isNil reports whether a generic value is absent (YAML null).
func isNil(v any) bool { return v == nil }

// mergeDefaults copies into dst every key of def that dst lacks or holds as
// null, recursing where both hold a mapping. Lists are not merged: a list
// given replaces the default list.
func mergeDefaults(dst, def map[string]any) {
	for k, dv := range def {
		cur, ok := dst[k]
		if !ok || isNil(cur) {
			dst[k] = deepCopy(dv)
			continue
		}
		cm, ok1 := cur.(map[string]any)
		dm, ok2 := dv.(map[string]any)
		if ok1 && ok2 {
			mergeDefaults(cm, dm)
		}
	}
}

// deepCopy copies the maps and slices of a generic value.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	default:
		return v
	}
}

// leafKeys returns the key paths (dot-separated) of every scalar or list
// field under t, which must be a struct type, prefixed with prefix. Maps are
// not descended into: their keys are not known from the type.
func leafKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name := tagName(f)
		if name == "" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != durationType:
			out = append(out, leafKeys(ft, key)...)
		case ft.Kind() == reflect.Map:
			// per-name keys are bound by the caller
		default:
			out = append(out, key)
		}
	}
	return out
}

// checkKeys reports every key of raw (a generic value decoded from YAML) that
// has no field in t, with its full key path, and every mapping or list given
// where the other is expected (mapstructure's messages for these speak of Go
// types, and it silently takes a mapping as a list of one).
func checkKeys(raw any, t reflect.Type, path string, report func(key string, err error)) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
	case t.Kind() == reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			if raw != nil {
				report(path, fmt.Errorf("expected a mapping, got %s", describeValue(raw)))
			}
			return
		}
		fields := map[string]reflect.StructField{}
		for i := range t.NumField() {
			if name := tagName(t.Field(i)); name != "" {
				fields[name] = t.Field(i)
			}
		}
		for _, k := range sortedKeys(m) {
			f, ok := fields[k]
			if !ok {
				report(joinKey(path, k), unknownKeyError(k, fields))
				continue
			}
			checkKeys(m[k], f.Type, joinKey(path, k), report)
		}
	case t.Kind() == reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			if raw != nil {
				report(path, fmt.Errorf("expected a mapping, got %s", describeValue(raw)))
			}
			return
		}
		for _, k := range sortedKeys(m) {
			checkKeys(m[k], t.Elem(), joinKey(path, k), report)
		}
	case t.Kind() == reflect.Slice:
		switch s := raw.(type) {
		case []any:
			for i, e := range s {
				checkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), report)
			}
		case map[string]any:
			// The decoder would take a mapping as a list of one.
			report(path, fmt.Errorf("expected a list, got a mapping"))
		}
	}
}

// unknownKeyError says that key is unknown and suggests the nearest valid
// key when it is a likely typo.
func unknownKeyError(key string, fields map[string]reflect.StructField) error {
	// Suggest only a likely typo: at most two edits, and fewer than half
	// the key's letters.
	best, bestDist := "", min(3, (len(key)+1)/2)
	for name := range fields {
		if d := editDistance(key, name); d < bestDist || (d == bestDist && best != "" && name < best) {
			best, bestDist = name, d
		}
	}
	if best != "" {
		return fmt.Errorf("unknown key (did you mean %q?)", best)
	}
	valid := make([]string, 0, len(fields))
	for name := range fields {
		valid = append(valid, name)
	}
	slices.Sort(valid)
	return fmt.Errorf("unknown key (valid: %s)", strings.Join(valid, ", "))
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// joinKey appends a key to a key path.
func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
