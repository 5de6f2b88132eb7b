package logging

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestNewJSONWhenNotATerminal(t *testing.T) {
	for _, format := range []string{"auto", "", "json"} {
		var buf bytes.Buffer
		log, err := New("info", format, &buf)
		if err != nil {
			t.Fatalf("New(info, %q) = %v", format, err)
		}
		log.WithField("service", "echo").Info("endpoint up")
		log.Debug("hidden below info")

		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 1 {
			t.Fatalf("format %q: got %d lines, want 1 (debug is below info):\n%s", format, len(lines), buf.String())
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
			t.Fatalf("format %q: a buffer is not a terminal, want JSON; got %q: %v", format, lines[0], err)
		}
		if rec["msg"] != "endpoint up" || rec["level"] != "info" || rec["service"] != "echo" || rec["time"] == nil {
			t.Errorf("format %q: record = %v", format, rec)
		}
	}
}

func TestNewText(t *testing.T) {
	var buf bytes.Buffer
	log, err := New("debug", "text", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.WithField("addr", "127.0.0.1:9000").Debug("probe failed")
	got := buf.String()
	for _, want := range []string{"level=debug", `msg="probe failed"`, "addr=\"127.0.0.1:9000\""} {
		if !strings.Contains(got, want) {
			t.Errorf("text line %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "\x1b[") {
		t.Errorf("colour codes written to a non-terminal: %q", got)
	}
	if log.GetLevel() != logrus.DebugLevel {
		t.Errorf("level = %s, want debug", log.GetLevel())
	}
}

func TestNewErrorsNameTheKey(t *testing.T) {
	if _, err := New("verbose", "auto", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `log.level: unknown level "verbose"`) {
		t.Errorf("bad level: err = %v, want one naming log.level", err)
	}
	if _, err := New("info", "xml", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `log.format: unknown format "xml"`) {
		t.Errorf("bad format: err = %v, want one naming log.format", err)
	}
}

func TestIsTerminal(t *testing.T) {
	if IsTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if IsTerminal(w) {
		t.Error("a pipe is a terminal")
	}
}
