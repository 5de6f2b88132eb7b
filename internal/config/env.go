package config

import (
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/spf13/viper"
)

// Environment overrides. viper reads an environment variable only for a key
// it knows (one with a default, a value in the file, or a binding), so every
// overridable key is bound explicitly here:
//
//   - every key of the static sections (admin, log, trusted_proxies,
//     shutdown, zookeeper);
//   - every key of each entry point the file names, and of "web";
//   - every key of each service the file names
//     (ZKGATE_SERVICES_ECHO_TIMEOUTS_DIAL).
//
// Routes are a list and have no environment overrides.

// EnvVar returns the environment variable that overrides a key path given
// as segments, e.g. ("zookeeper", "servers") → ZKGATE_ZOOKEEPER_SERVERS.
// Characters other than letters and digits become '_'.
func EnvVar(segments ...string) string {
	var b strings.Builder
	b.WriteString(EnvPrefix)
	for i, s := range segments {
		if i > 0 {
			b.WriteByte('_')
		}
		for _, r := range strings.ToUpper(s) {
			if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
	}
	return b.String()
}

// envBinding is one overridable key: its path segments and variable name.
type envBinding struct {
	segments []string
	env      string
}

// envBindings lists the bindings for a file naming the given entry points
// and services.
func envBindings(entryPoints, services []string) []envBinding {
	var out []envBinding
	add := func(prefix []string, t reflect.Type) {
		for _, leaf := range leafKeys(t, "") {
			segs := append(slices.Clone(prefix), strings.Split(leaf, ".")...)
			out = append(out, envBinding{segments: segs, env: EnvVar(segs...)})
		}
	}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		name := tagName(f)
		if name == "" || f.Tag.Get("static") != "true" {
			continue
		}
		switch {
		case f.Type.Kind() == reflect.Struct:
			add([]string{name}, f.Type)
		case f.Type.Kind() == reflect.Map:
			// entry points, below
		default:
			out = append(out, envBinding{segments: []string{name}, env: EnvVar(name)})
		}
	}
	if !slices.Contains(entryPoints, DefaultEntryPoint) {
		entryPoints = append(slices.Clone(entryPoints), DefaultEntryPoint)
	}
	for _, ep := range entryPoints {
		add([]string{"entry_points", ep}, reflect.TypeFor[EntryPoint]())
	}
	for _, svc := range services {
		add([]string{"services", svc}, reflect.TypeFor[Service]())
	}
	return out
}

// bindEnv binds the environment overrides of the file read into v. It
// returns the key paths overridden by a set variable, mapped to the
// variable's name.
func bindEnv(v *viper.Viper) map[string]string {
	entryPoints := mapKeys(v.Get("entry_points"))
	services := mapKeys(v.Get("services"))
	fromEnv := map[string]string{}
	for _, b := range envBindings(entryPoints, services) {
		// BindEnv fails only without a key; ours always have one.
		_ = v.BindEnv(strings.Join(b.segments, keyDelimiter), b.env)
		if os.Getenv(b.env) != "" { // viper ignores empty variables too
			fromEnv[strings.Join(b.segments, ".")] = b.env
		}
	}
	return fromEnv
}

// annotateEnv adds the environment variable to each problem at a key whose
// value came from one.
func (p *problems) annotateEnv(fromEnv map[string]string) {
	for _, e := range p.errs {
		fe := e.(*FieldError)
		// A list element's problem ("zookeeper.servers[1]") names the list.
		key, _, _ := strings.Cut(fe.Key, "[")
		if env, ok := fromEnv[key]; ok {
			fe.Err = fmt.Errorf("%w (value from $%s)", fe.Err, env)
		}
	}
}

// mapKeys returns the sorted keys of a generic mapping, nil for anything
// else.
func mapKeys(v any) []string {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// UnknownEnv returns one warning for each variable of environ ("NAME=value",
// as os.Environ gives them) that starts with EnvPrefix but overrides no key
// of cfg and is not EnvConfigPath. viper ignores such a variable silently,
// so a misspelt ZKGATE_ZOOKEPER_SERVERS would leave the file's servers in
// force without a word. A likely typo gets the nearest variable suggested.
func UnknownEnv(cfg *Config, environ []string) []string {
	known := map[string]bool{EnvConfigPath: true}
	var names []string
	for _, b := range envBindings(slices.Sorted(maps.Keys(cfg.EntryPoints)), slices.Sorted(maps.Keys(cfg.Services))) {
		known[b.env] = true
		names = append(names, b.env)
	}
	var warnings []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || known[name] {
			continue
		}
		msg := fmt.Sprintf("environment variable %s overrides no configuration key and is ignored", name)
		best, bestDist := "", min(4, len(name)/4)
		for _, n := range names {
			if d := editDistance(name, n); d < bestDist || (d == bestDist && best != "" && n < best) {
				best, bestDist = n, d
			}
		}
		switch {
		case best != "":
			msg += fmt.Sprintf(" (did you mean %s?)", best)
		case strings.HasPrefix(name, EnvPrefix+"ROUTES"):
			msg += " (routes are a list and cannot be overridden from the environment)"
		case strings.HasPrefix(name, EnvPrefix+"SERVICES_"), strings.HasPrefix(name, EnvPrefix+"ENTRY_POINTS_"):
			msg += " (only the services and entry points the file names can be overridden)"
		}
		warnings = append(warnings, msg)
	}
	slices.Sort(warnings)
	return warnings
}
