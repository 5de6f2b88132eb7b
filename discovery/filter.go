package discovery

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// A Filter keeps the members of a service whose metadata matches: every
// entry's key must be present in the member's metadata and its value must
// match the entry's pattern. Members filtered out are neither malformed nor
// errors; they are counted (ConfStats.Filtered).
//
// Keys. A filter key names a metadata entry without its source prefix and
// case-insensitively (configuration keys are lower-cased on load): key K
// matches the first present of the Meta entries K, payload.K,
// metadata.K, labels.K, serverset.K, curator.K and nerve.K. So "zone"
// matches a Curator payload's "zone", a ServerSet member's or Spring
// instance's metadata "zone" and a Nerve label "zone"; "shard" a ServerSet
// member's shard; "endpoint" the ServerSet additional endpoint served;
// "format" the node format (plain nodes carry only this one).
//
// Values. A value without regular-expression metacharacters is compared
// exactly ("a" matches "a", not "ab"). Any other value is a Go (RE2) regular
// expression that must match somewhere in the metadata value, as regexp
// MatchString does: "^2\." matches "2.0" and "2.17"; anchor with ^ and $ to
// match the whole value ("^v1\.2$").
type Filter struct {
	entries []filterEntry
}

type filterEntry struct {
	key   string
	exact string         // when re is nil
	re    *regexp.Regexp // nil for an exact value
}

// metaPrefixes are the source prefixes the codecs give Meta keys, in the
// order a filter key looks them up (after the key itself).
var metaPrefixes = []string{"payload.", "metadata.", "labels.", "serverset.", "curator.", "nerve."}

// CompileFilterValue compiles one filter value, as NewFilter does; its error
// says what is wrong with the value, for configuration validation.
func CompileFilterValue(v string) (*regexp.Regexp, error) {
	if regexp.QuoteMeta(v) == v {
		return nil, nil
	}
	re, err := regexp.Compile(v)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression %q: %v", v, err)
	}
	return re, nil
}

// NewFilter compiles m (metadata key → value or pattern). An empty m keeps
// every member. The error names the first key (in sorted order) whose value
// does not compile.
func NewFilter(m map[string]string) (Filter, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var f Filter
	for _, k := range keys {
		if k == "" {
			return Filter{}, fmt.Errorf("filter: empty metadata key")
		}
		re, err := CompileFilterValue(m[k])
		if err != nil {
			return Filter{}, fmt.Errorf("filter.%s: %w", k, err)
		}
		f.entries = append(f.entries, filterEntry{key: k, exact: m[k], re: re})
	}
	return f, nil
}

// Empty reports whether f keeps every member.
func (f Filter) Empty() bool { return len(f.entries) == 0 }

// Match reports whether meta satisfies every entry of f.
func (f Filter) Match(meta map[string]string) bool {
	for _, e := range f.entries {
		v, ok := lookupMeta(meta, e.key)
		switch {
		case !ok:
			return false
		case e.re == nil && v != e.exact:
			return false
		case e.re != nil && !e.re.MatchString(v):
			return false
		}
	}
	return true
}

// lookupMeta finds the value of filter key key in meta (see Filter).
func lookupMeta(meta map[string]string, key string) (string, bool) {
	if v, ok := meta[key]; ok {
		return v, true
	}
	for _, prefix := range append([]string{""}, metaPrefixes...) {
		for k, v := range meta {
			if len(k) == len(prefix)+len(key) && strings.HasPrefix(k, prefix) && strings.EqualFold(k[len(prefix):], key) {
				return v, true
			}
		}
	}
	return "", false
}
