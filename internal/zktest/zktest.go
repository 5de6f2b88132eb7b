// Package zktest runs real ZooKeeper servers for tests: a standalone Server, an
// n-node Ensemble, a TCP Proxy that can cut clients off, go-zookeeper clients
// whose session states are recorded (Connect, ConnectEvents), and ways to
// expire one client's session without touching the others (ExpireSession,
// ExpireConn, Proxy.ExpireSessions, or a Proxy cut longer than the session
// timeout).
//
// It uses Debian's `zookeeper` package (ZooKeeper 3.8, jars in /usr/share/java)
// and a `java` on PATH. Every server is a JVM started from the test, listening
// on free loopback ports, with its configuration, data and log in t.TempDir();
// t.Cleanup kills it. Start and StartEnsemble call Require, which skips the
// test when ZooKeeper is missing, or fails it when the environment variable CI
// is "true".
//
// Readiness is never assumed from a connectable port. A server is ready when
// `srvr` prints the expected "Mode:" line, the port is held by the very process
// that was started (checked through /proc, so a stray server on the same port
// cannot pass for ours), and a real session can be opened and closed.
//
// A failure reports the tail of the server's log (zookeeper.log in its
// directory).
package zktest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ClasspathEnv names the environment variable that overrides the Java class
// path used to run ZooKeeper (colon-separated), for machines where ZooKeeper
// is not installed the Debian way.
const ClasspathEnv = "ZKTEST_CLASSPATH"

const (
	// zookeeperJar is Debian's jar (package libzookeeper-java, pulled in by
	// zookeeper). Its manifest's Class-Path lists every dependency, which is
	// how Debian's own zkServer.sh finds them: the class path needs only it.
	zookeeperJar = "/usr/share/java/zookeeper.jar"
	// slf4jSimpleJar gives ZooKeeper's slf4j logging a backend writing to
	// stderr; without one the log would be empty.
	slf4jSimpleJar = "/usr/share/java/slf4j-simple.jar"

	installHint = "install Debian's package `zookeeper` (apt-get install zookeeper)"
)

// serverJars are the jars a server cannot run without. Others named by the
// manifest serve the CLI (jline) or disabled features (jetty for the admin
// server), and Debian does not always install them.
var serverJars = []string{
	zookeeperJar,
	"/usr/share/java/zookeeper-jute.jar",
	"/usr/share/java/slf4j-api.jar",
}

var availability = sync.OnceValue(checkAvailable)

// Available reports whether java and ZooKeeper are installed, naming what is
// missing when they are not. The answer is computed once per process.
func Available() error { return availability() }

// Require skips t when ZooKeeper or java is missing, with a message saying how
// to install them. When the environment variable CI is "true" it fails t
// instead, so a CI run never passes by skipping.
func Require(t testing.TB) {
	t.Helper()
	err := Available()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("zktest: real ZooKeeper required under CI=true: %v", err)
		return
	}
	t.Skipf("zktest: skipping, real ZooKeeper not available: %v", err)
}

func checkAvailable() error {
	if _, err := javaPath(); err != nil {
		return err
	}
	if cp := os.Getenv(ClasspathEnv); cp != "" {
		return nil
	}
	var missing []string
	for _, jar := range serverJars {
		if _, err := os.Stat(jar); err != nil {
			missing = append(missing, jar)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s; %s", strings.Join(missing, ", "), installHint)
	}
	return nil
}

// javaPath finds the java binary: $JAVA_HOME/bin/java when set, else PATH.
func javaPath() (string, error) {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		p := home + "/bin/java"
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("java not found on PATH: %w; %s (it depends on default-jre)", err, installHint)
	}
	return p, nil
}

// classpath is the class path of the ZooKeeper JVMs: the override, or
// zookeeper.jar (whose manifest brings its dependencies) plus slf4j-simple
// when installed.
func classpath() string {
	if cp := os.Getenv(ClasspathEnv); cp != "" {
		return cp
	}
	cp := zookeeperJar
	if _, err := os.Stat(slf4jSimpleJar); err == nil {
		cp += ":" + slf4jSimpleJar
	}
	return cp
}

var ports struct {
	sync.Mutex
	given map[int]bool
}

// FreePort returns a loopback TCP port that is free now and that this process
// has not handed out before. Ports are drawn below the kernel's ephemeral
// range, so outgoing connections of other programs do not race for them while
// a JVM starts.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatalf("zktest: %v", err)
	}
	return p
}

func freePort() (int, error) {
	lo, hi := 20000, ephemeralLow()
	if hi-lo < 1000 {
		lo = 1024
	}
	ports.Lock()
	defer ports.Unlock()
	if ports.given == nil {
		ports.given = make(map[int]bool)
	}
	for range 200 {
		p := lo + rand.IntN(hi-lo)
		if ports.given[p] || portBusy(p) != nil {
			continue
		}
		ports.given[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("no free loopback port found in [%d, %d) after 200 tries", lo, hi)
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 2048 {
				return n
			}
		}
	}
	return 32768
}

// portBusy returns an error when 127.0.0.1:port cannot be bound.
func portBusy(port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d is already in use: %w", port, err)
	}
	return ln.Close()
}

// WaitFor polls cond every 20ms until it returns true, failing t with the
// formatted message when timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("zktest: timed out after %v waiting for %s", timeout, fmt.Sprintf(format, args...))
	}
}

// Poll calls cond every 20ms until it returns true (true) or timeout passes
// (false): a bounded wait for tests that decide themselves what a timeout
// means. WaitFor fails the test instead.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
