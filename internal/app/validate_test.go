package app

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zkgate/zkgate/internal/config"
	"github.com/zkgate/zkgate/internal/config/cases"
)

// TestValidateIsServe runs every file of the validation table and the
// example configurations through zkgate validate and through what serve
// does with a file before it starts anything (config.Load, then build, the
// function Gateway.apply builds routes and services with), and checks that
// both give the table's verdict: a file that validates starts and reloads,
// and a file that serve refuses does not validate.
func TestValidateIsServe(t *testing.T) {
	type file struct {
		cases.Case
		valid bool
	}
	var files []file
	for _, c := range cases.Refused {
		files = append(files, file{c, false})
	}
	for _, c := range cases.RefusedByBuild {
		files = append(files, file{c, false})
	}
	for _, c := range cases.Valid {
		files = append(files, file{c, true})
	}
	for _, name := range []string{"gateway.yaml", "gateway.docker.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "configs", name))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, file{cases.Case{Name: "configs/" + name, YAML: string(b)}, true})
	}

	for _, f := range files {
		t.Run(f.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "test.yaml") // the name the table's messages give
			if err := os.WriteFile(path, []byte(f.YAML), 0o600); err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			validates := Main([]string{"validate", "--config", path}, io.Discard, &stderr) == exitOK

			cfg, serveErr := config.Load(path)
			if serveErr == nil {
				_, serveErr = build(cfg, nil, nil, nil)
			}
			serves := serveErr == nil

			if validates != serves {
				t.Fatalf("zkgate validate says valid=%v (%s), serve's build says valid=%v (%v)", validates, strings.TrimSpace(stderr.String()), serves, serveErr)
			}
			if validates != f.valid {
				t.Fatalf("valid=%v, want %v; problems:\n%s", validates, f.valid, stderr.String())
			}
			for _, want := range f.Problem {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("zkgate validate's problems lack %q:\n%s", want, stderr.String())
				}
			}
		})
	}
}
