package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join("..", "..", "configs", "gateway.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(`zookeeper: { servers: [] }
routes:
  - { name: a, service: payments }
  - { name: a, service: payments, balancer: fastest }
services: {}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  string
		stderrs []string
	}{
		{"example file", []string{"validate", "--config", good}, exitOK, "ok\n", nil},
		{"missing file", []string{"validate", "--config", filepath.Join(dir, "none.yaml")}, exitUsage, "", []string{"none.yaml"}},
		{"every error with its key", []string{"validate", "--config", bad}, exitUsage, "", []string{
			`routes[0].service: unknown service "payments"`,
			`routes[1].name: duplicate`,
			`routes[1].balancer: unknown balancer "fastest"`,
			`zookeeper.servers`,
		}},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", []string{`unknown command "frobnicate"`}},
		{"version", []string{"version"}, exitOK, "zkgate ", nil},
		{"help", []string{"help"}, exitOK, "usage: zkgate", nil},
		{"serve --help", []string{"serve", "--help"}, exitOK, "Usage of zkgate serve", nil},
		{"validate -h", []string{"validate", "-h"}, exitOK, "Usage of zkgate validate", nil},
		{"healthcheck --help", []string{"healthcheck", "--help"}, exitOK, "Usage of zkgate healthcheck", nil},
		{"unknown flag", []string{"serve", "--bogus"}, exitUsage, "", []string{"flag provided but not defined: -bogus", "Usage of zkgate serve"}},
		{"stray argument", []string{"validate", "x.yaml"}, exitUsage, "", []string{`unexpected argument "x.yaml"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(tt.args, &out, &errb)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, errb.String())
			}
			if !strings.HasPrefix(out.String(), tt.stdout) {
				t.Errorf("stdout %q, want prefix %q", out.String(), tt.stdout)
			}
			for _, want := range tt.stderrs {
				if !strings.Contains(errb.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, errb.String())
				}
			}
		})
	}
}

// TestValidateWarnsOfUnknownEnv: a misspelt override is named, and the file
// still validates.
func TestValidateWarnsOfUnknownEnv(t *testing.T) {
	t.Setenv("ZKGATE_ZOOKEPER_SERVERS", "zk:2181")
	var out, errb bytes.Buffer
	code := Main([]string{"validate", "--config", filepath.Join("..", "..", "configs", "gateway.yaml")}, &out, &errb)
	if code != exitOK || out.String() != "ok\n" || !strings.Contains(errb.String(), "warning: environment variable ZKGATE_ZOOKEPER_SERVERS overrides no configuration key and is ignored (did you mean ZKGATE_ZOOKEEPER_SERVERS?)") {
		t.Errorf("exit %d, stdout %q, stderr %q; want ok and the warning", code, out.String(), errb.String())
	}
}
