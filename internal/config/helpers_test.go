package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestMain clears ZKGATE_* variables inherited from the caller's shell, so
// that the tests see the defaults; tests set what they need with t.Setenv.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, EnvPrefix) {
			os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}

// validYAML is a small valid configuration the tests edit.
const validYAML = `
routes:
  - name: echo
    match: {path_prefix: /echo}
    service: echo
services:
  echo: {}
`

// problemList flattens a joined error into its messages.
func problemList(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, problemList(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// mustParse parses yaml and fails the test on error.
func mustParse(t *testing.T, yaml string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%s", strings.Join(problemList(err), "\n"))
	}
	return cfg
}

// wantOneProblem checks that err holds exactly one problem, a *FieldError,
// whose message contains every want.
func wantOneProblem(t *testing.T, err error, want ...string) {
	t.Helper()
	probs := problemList(err)
	if len(probs) != 1 {
		t.Fatalf("got %d problems, want 1:\n%s", len(probs), strings.Join(probs, "\n"))
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("error %q is not a *FieldError", probs[0])
	}
	for _, w := range want {
		if !strings.Contains(probs[0], w) {
			t.Errorf("problem %q does not contain %q", probs[0], w)
		}
	}
}
