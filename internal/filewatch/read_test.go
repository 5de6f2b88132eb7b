package filewatch

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "key\n")
	if data, err := ReadFile(good, 16); err != nil || string(data) != "key\n" {
		t.Fatalf("good file: %q %v", data, err)
	}
	for _, tt := range []struct {
		path, want string
	}{
		{filepath.Join(dir, "missing"), "no such file"},
		{dir, "not a regular file"},
		{write("big", strings.Repeat("x", 17)), "larger than 16 bytes"},
		{write("blank", " \n\t\n"), "is empty"},
	} {
		_, err := ReadFile(tt.path, 16)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), tt.path) {
			t.Errorf("%s: error %v, want %q without the path (the caller names it)", tt.path, err, tt.want)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), 16); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file's error %v is not fs.ErrNotExist", err)
	}
}
