package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Dynamic is the part of a configuration that a reload applies while
// zkgate runs: the routes (the router is rebuilt and swapped) and the
// services (added, removed or rebuilt as their settings changed). Every
// other key is static.
type Dynamic struct {
	Routes   []Route
	Services map[string]Service
}

// Dynamic returns the reloadable part of c. The result shares c's slices and
// maps; neither is modified after Parse returns.
func (c *Config) Dynamic() Dynamic {
	return Dynamic{Routes: c.Routes, Services: c.Services}
}

// StaticChange is a static key whose value differs between the running
// configuration and a newly read one. The new value takes effect only after
// a restart; until then the running value stays.
type StaticChange struct {
	// Key is the key path, e.g. "zookeeper.servers".
	Key string
	// Old and New are the values as text; "(hidden)" for secrets.
	Old, New string
}

func (c *StaticChange) Error() string {
	return fmt.Sprintf("static setting changed from %s to %s; restart zkgate to apply it (the running value stays)", c.Old, c.New)
}

// Reloadable compares the static keys of the running configuration old with
// those of next and returns one *FieldError wrapping a *StaticChange per
// changed key, joined; nil when only reloadable keys (routes, services)
// changed. It is meant to be logged as a warning: the reload still applies
// next.Dynamic().
func Reloadable(old, next *Config) error {
	p := &problems{source: next.Source}
	a, b := staticLeaves(old), staticLeaves(next)
	keys := sortedNames(a)
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var skip []string // prefixes of the keys under entries added or removed as a whole
	for _, k := range keys {
		if slices.ContainsFunc(skip, func(pre string) bool { return strings.HasPrefix(k, pre) }) {
			continue
		}
		va, okA := a[k]
		vb, okB := b[k]
		if okA && okB && va.text == vb.text {
			continue
		}
		if va.entry || vb.entry {
			skip = append(skip, k+".")
		}
		ch := &StaticChange{Key: k, Old: va.show(okA), New: vb.show(okB)}
		p.add(k, ch)
	}
	return p.err()
}

// leaf is the value of one static key, as text.
type leaf struct {
	text   string
	secret bool
	entry  bool // a map entry (an entry point) rather than a value
}

func (l leaf) show(present bool) string {
	switch {
	case !present:
		return "(unset)"
	case l.secret && l.text != `""`:
		return "(hidden)"
	default:
		return l.text
	}
}

// staticLeaves flattens the static sections of c into key path → value.
func staticLeaves(c *Config) map[string]leaf {
	out := map[string]leaf{}
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if name := tagName(f); name != "" && f.Tag.Get("static") == "true" {
			flatten(v.Field(i), f, name, out)
		}
	}
	return out
}

// flatten adds the leaves of v, the value of field f at key, to out.
func flatten(v reflect.Value, f reflect.StructField, key string, out map[string]leaf) {
	switch {
	case v.Type() == durationType:
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			if name := tagName(sf); name != "" {
				flatten(v.Field(i), sf, key+"."+name, out)
			}
		}
		return
	case v.Kind() == reflect.Map:
		for it := v.MapRange(); it.Next(); {
			k := key + "." + it.Key().String()
			out[k] = leaf{text: "(set)", entry: true}
			flatten(it.Value(), f, k, out)
		}
		return
	}
	out[key] = leaf{text: showValue(toMap(v)), secret: f.Tag.Get("secret") == "true"}
}

// showValue formats a generic value with strings quoted.
func showValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = showValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		return fmt.Sprint(x)
	}
}
