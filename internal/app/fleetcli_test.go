package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// zkgate config's usage errors exit 2 before any ZooKeeper is sought.
func TestConfigCommandUsage(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("fleet: {config_path: relative}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"config"}, "usage: zkgate config push"},
		{[]string{"config", "list"}, "usage: zkgate config push"},
		{[]string{"config", "push", "--config", bad}, "want 1 argument(s), got 0"},
		{[]string{"config", "pull", "--config", bad, "extra"}, "want 0 argument(s), got 1"},
		{[]string{"config", "pull", "--config", bad}, `fleet.config_path: "relative" must start with "/"`},
		{[]string{"config", "push", "--nope", "f"}, "flag provided but not defined: -nope"},
	} {
		var out, errOut bytes.Buffer
		if code := Main(tc.args, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("zkgate %s = %d, stderr %q; want %d with %q", strings.Join(tc.args, " "), code, errOut.String(), exitUsage, tc.want)
		}
	}
}
