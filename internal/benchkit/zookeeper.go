package benchkit

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ZooKeeperClasspath is where Debian's zookeeper package puts its
// configuration (log4j) and jar.
const ZooKeeperClasspath = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"

// StartZooKeeper starts a standalone ZooKeeper on 127.0.0.1:port with its
// data in dir, and returns once it serves (its srvr command prints a Mode
// line; ruok answers a few milliseconds before the server serves). A busy
// port is an error: another server's answer would look like success.
func StartZooKeeper(ctx context.Context, procs *Procs, dir string, port int) (*Proc, error) {
	if !PortFree(port) {
		return nil, fmt.Errorf("benchkit: zookeeper: port %d is already in use on 127.0.0.1", port)
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, fmt.Errorf("benchkit: zookeeper: %w", err)
	}
	cfg := filepath.Join(dir, "zoo.cfg")
	text := fmt.Sprintf(`tickTime=500
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok,mntr
minSessionTimeout=1000
maxSessionTimeout=60000
`, data, port)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("benchkit: zookeeper: %w", err)
	}
	p, err := procs.Start(ProcSpec{
		Name: "zookeeper",
		Argv: []string{"java", "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.log.dir=" + dir,
			"-cp", ZooKeeperClasspath, "org.apache.zookeeper.server.ZooKeeperServerMain", cfg},
		Log: filepath.Join(dir, "zookeeper.log"),
	})
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	err = WaitFor(ctx, 60*time.Second, "ZooKeeper to serve on "+addr, func() (bool, error) {
		if err := p.Err(); err != nil {
			return false, err
		}
		out, err := fourLetter(addr, "srvr")
		return err == nil && strings.Contains("\n"+out, "\nMode:"), nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// fourLetter sends a ZooKeeper four-letter command and returns the answer.
func fourLetter(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// WaitFor polls cond every 20ms until it returns true, returns an error, or
// timeout or ctx ends; what names the awaited condition in the error.
func WaitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("benchkit: waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("benchkit: timed out after %v waiting for %s: %w", timeout, what, ctx.Err())
		case <-tick.C:
		}
	}
}

// PortFree reports whether nothing listens on 127.0.0.1:port and it can be
// bound.
func PortFree(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
	if err == nil {
		_ = c.Close()
		return false
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}
