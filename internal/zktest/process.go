package zktest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// JVM flags chosen for start-up time and a small footprint: C1 only, serial
// GC, class-data sharing, no perf-data file in /tmp.
var jvmFlags = []string{
	"-Xmx128m",
	"-XX:+UseSerialGC",
	"-XX:TieredStopAtLevel=1",
	"-Xshare:auto",
	"-XX:-UsePerfData",
	"-Djava.awt.headless=true",
	"-Dzookeeper.jmx.log4j.disable=true",
	"-Dorg.slf4j.simpleLogger.showDateTime=true",
	"-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
}

const (
	standaloneMain = "org.apache.zookeeper.server.ZooKeeperServerMain"
	quorumMain     = "org.apache.zookeeper.server.quorum.QuorumPeerMain"

	// stopGrace is how long a process gets to exit after SIGTERM before
	// SIGKILL; reapWait bounds the wait for the kernel to report it dead.
	stopGrace = 5 * time.Second
	reapWait  = 10 * time.Second
)

// errStopped reports an operation on a process that is not running.
var errStopped = errors.New("not running")

// process is one ZooKeeper JVM started by this package.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed once cmd.Wait has reaped the process
	waitErr error         // cmd.Wait's result, valid after done
	logPath string
}

// launch starts a ZooKeeper JVM running mainClass on cfg, appending its
// output to logPath. The process is reaped by a goroutine of its own, and the
// kernel kills it if the thread that started it dies (a crashed test binary
// leaves no JVM behind, best effort).
func launch(mainClass, cfg, logPath string) (*process, error) {
	java, err := javaPath()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open server log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	fmt.Fprintf(logf, "---- zktest: %s %s at %s\n", mainClass, cfg, time.Now().Format(time.RFC3339Nano))

	args := append([]string{}, jvmFlags...)
	args = append(args, "-cp", classpath(), mainClass, cfg)
	cmd := exec.Command(java, args...)
	cmd.Dir = filepath.Dir(cfg)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = ChildAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", java, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process is gone: reaped, or a zombie (a process
// that has exited but not yet been reaped still answers kill -0).
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
	}
	state, err := procState(p.pid())
	return err != nil || state == 'Z' || state == 'X'
}

// exitError describes how the process ended, once it has.
func (p *process) exitError() error {
	select {
	case <-p.done:
		if p.waitErr == nil {
			return errors.New("process exited with status 0")
		}
		return fmt.Errorf("process %w", p.waitErr)
	default:
		return errors.New("process is a zombie")
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILL, and waits until the
// process is reaped. A zero grace kills at once.
func (p *process) stop(grace time.Duration) error {
	if p.exited() {
		p.awaitReaped(reapWait)
		return nil
	}
	if grace > 0 {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if p.awaitDead(grace) {
			p.awaitReaped(reapWait)
			return nil
		}
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	if !p.awaitDead(reapWait) {
		return fmt.Errorf("pid %d still alive %v after SIGKILL", p.pid(), reapWait)
	}
	p.awaitReaped(reapWait)
	return nil
}

// awaitDead waits up to timeout for the process to exit or become a zombie.
func (p *process) awaitDead(timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return true
		case <-timer.C:
			return p.exited()
		case <-tick.C:
			if p.exited() {
				return true
			}
		}
	}
}

// awaitReaped waits, bounded, for the reaping goroutine so that no zombie
// outlives a stop.
func (p *process) awaitReaped(timeout time.Duration) {
	select {
	case <-p.done:
	case <-time.After(timeout):
	}
}

// procState returns the state letter of /proc/PID/stat (R, S, D, Z, ...).
func procState(pid int) (byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcState(b)
}

// parseProcState extracts the state from the contents of /proc/PID/stat:
// "pid (comm) S ...", where comm may itself contain spaces and parentheses.
func parseProcState(stat []byte) (byte, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return 0, fmt.Errorf("malformed /proc stat %q", stat)
	}
	return stat[i+2], nil
}

// listensOn reports whether the process holds a listening TCP socket on port
// (IPv4 or IPv6), by matching the socket inodes of /proc/net/tcp{,6} with the
// descriptors in /proc/PID/fd.
func listensOn(pid, port int) (bool, error) {
	inodes := make(map[string]bool)
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return false, err
		}
		for _, inode := range listeningInodes(b, port) {
			inodes["socket:["+inode+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return false, nil
	}
	fdDir := "/proc/" + strconv.Itoa(pid) + "/fd"
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && inodes[target] {
			return true, nil
		}
	}
	return false, nil
}

// listeningInodes returns the inodes of the sockets in LISTEN state (0A) on
// port in a /proc/net/tcp or tcp6 table.
func listeningInodes(table []byte, port int) []string {
	var out []string
	suffix := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(table), "\n")[1:] {
		f := strings.Fields(line)
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) < 10 || f[3] != "0A" || !strings.HasSuffix(f[1], suffix) {
			continue
		}
		out = append(out, f[9])
	}
	return out
}

// logTail returns the last lines of a server log, for failure messages.
func logTail(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const window = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		_, _ = f.Seek(-window, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return "---- " + path + " (tail)\n" + strings.Join(all, "\n")
}
