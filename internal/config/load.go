package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Where the configuration file is looked for.
const (
	// EnvConfigPath names the file when no --config flag is given.
	EnvConfigPath = "ZKGATE_CONFIG"
	// DefaultPath is used when neither the flag nor EnvConfigPath is set.
	DefaultPath = "./configs/gateway.yaml"
	// EnvPrefix starts every environment override (see EnvVar).
	EnvPrefix = "ZKGATE_"
)

// keyDelimiter separates key path segments inside viper. It is not "." so
// that service names such as "payments.v2" stay one key.
const keyDelimiter = "::"

// ResolvePath returns the configuration file to read: flagValue when not
// empty, else $ZKGATE_CONFIG, else DefaultPath. how says which of the three
// it is ("--config", "$ZKGATE_CONFIG" or "default"), for messages.
func ResolvePath(flagValue string) (path, how string) {
	if flagValue != "" {
		return flagValue, "--config"
	}
	if p := os.Getenv(EnvConfigPath); p != "" {
		return p, "$" + EnvConfigPath
	}
	return DefaultPath, "default"
}

// Load reads, decodes and validates the configuration file at path (resolved
// with ResolvePath, so "" means $ZKGATE_CONFIG or DefaultPath). The error
// joins every problem found (see FieldError).
func Load(path string) (*Config, error) {
	path, how := ResolvePath(path)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
	case how == "default":
		return nil, fmt.Errorf("config: %w (no --config given and $%s not set; use --config FILE)", err, EnvConfigPath)
	case how != "--config":
		return nil, fmt.Errorf("config: %w (path from %s)", err, how)
	default:
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes and validates YAML configuration data; source names it in
// error messages (a path, or any label). Environment overrides apply as in
// Load. Use it for tests and for reloads.
func Parse(data []byte, source string) (*Config, error) {
	cfg, err := decode(data, source)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decode reads data into a Config with defaults and environment overrides
// applied and normalized, without validating it.
func decode(data []byte, source string) (*Config, error) {
	p := &problems{source: source}
	v := viper.NewWithOptions(viper.KeyDelimiter(keyDelimiter))
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		p.add("", yamlError(err, data))
		return nil, p.err()
	}
	fromEnv := bindEnv(v)
	raw := v.AllSettings()
	restoreEmptyMappings(v, raw)
	applyDefaults(raw)

	checkKeys(raw, reflect.TypeFor[Config](), "", p.add)
	cfg := &Config{}
	md := &mapstructure.Metadata{}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.ComposeDecodeHookFunc(durationHook, listHook),
		WeaklyTypedInput: true, // environment values are strings
		Metadata:         md,
		Result:           cfg,
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := dec.Decode(raw); err != nil {
		p.addDecodeErrors(err)
	}
	if len(p.errs) == 0 && len(md.Unused) > 0 {
		// checkKeys should have found these; report them if it did not.
		for _, k := range md.Unused {
			p.add(keyPath(k), errors.New("unknown key"))
		}
	}
	if len(p.errs) > 0 {
		p.annotateEnv(fromEnv)
		return nil, p.err()
	}
	cfg.Source = source
	cfg.fromEnv = fromEnv
	cfg.normalize()
	return cfg, nil
}

// restoreEmptyMappings puts back the empty mappings of the file, which
// viper's AllSettings drops (it lists leaf keys only): without this,
// "services: {echo: {}}", a service with every default, would vanish. The
// subtree of each known top-level key, as viper holds it, is merged under
// raw; leaves from the environment already in raw win.
func restoreEmptyMappings(v *viper.Viper, raw map[string]any) {
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		key := tagName(t.Field(i))
		if key == "" {
			continue
		}
		if sub := v.Get(key); sub != nil {
			mergeDefaults(raw, map[string]any{key: sub})
		}
	}
}

// yamlLine matches the line reference of a YAML parser error.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError turns viper's parse error of data into "line N: problem". The
// YAML library's own line is often wrong: for a parser error (a bad indent,
// an unclosed flow sequence) it gives the 0-based line of the enclosing
// block's start, so an error on line 7 was reported as line 3. The line
// given is instead the first after the longest prefix of data that parses
// (syntaxErrorLine); the library's is the fallback.
func yamlError(err error, data []byte) error {
	var pe viper.ConfigParseError
	if errors.As(err, &pe) {
		err = pe.Unwrap()
	}
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line := m[1]
		if n := syntaxErrorLine(data); n > 0 {
			line = strconv.Itoa(n)
		}
		return fmt.Errorf("line %s: invalid YAML: %s", line, msg[len(m[0]):])
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.ReplaceAll(msg, "\n  ", " ")
	msg = strings.ReplaceAll(msg, "map[string]interface {}", "a mapping")
	return fmt.Errorf("invalid YAML: %s", msg)
}

// syntaxErrorLine returns the 1-based line after the longest prefix of
// whole lines of data that parses as YAML, 0 when data parses or the answer
// is unclear. A construct cut in the middle (a quoted string or flow
// sequence over several lines) fails as a prefix but not once whole, which
// is why the longest good prefix is sought, from the end.
func syntaxErrorLine(data []byte) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > 5000 || yaml.Unmarshal(data, new(any)) == nil {
		return 0
	}
	end := len(data)
	for k := len(lines) - 1; k >= 0; k-- {
		end -= len(lines[k])
		if yaml.Unmarshal(data[:end], new(any)) == nil {
			return k + 1
		}
	}
	return 0
}

// durationHook decodes durations strictly: a string such as "2s", or the
// number 0. A bare non-zero number is rejected, since YAML "timeout: 30"
// would otherwise mean 30 nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch x := data.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return nil, fmt.Errorf("invalid duration %q: use a number with a unit (ns, us, ms, s, m, h), e.g. \"2s\" or \"500ms\"", x)
		}
		return d, nil
	case time.Duration:
		return x, nil
	case int, int64, int32, uint, uint64, float64:
		if reflect.ValueOf(x).IsZero() {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("invalid duration %v: give a unit, e.g. \"%vs\"", x, x)
	default:
		return data, nil
	}
}

// listHook splits a string into a list at commas, trimming spaces, for
// lists given by environment variables ("a:2181, b:2181").
func listHook(from, to reflect.Type, data any) (any, error) {
	s, ok := data.(string)
	if !ok || to.Kind() != reflect.Slice {
		return data, nil
	}
	if strings.TrimSpace(s) == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}
