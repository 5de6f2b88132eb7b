package benchkit

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Machine describes where the benchmark ran.
type Machine struct {
	CPUs     int
	CPUModel string
	Kernel   string
	// Load is /proc/loadavg's three load averages, when read.
	Load string
	// Versions are the tools' versions, in the order asked.
	Versions []ToolVersion
}

// ToolVersion is one tool's version line.
type ToolVersion struct {
	Name, Version string
}

// ReadMachine reads the CPU model, kernel release and load average from
// /proc, and runs each tool's version command (bounded to 5s each).
func ReadMachine(tools []ToolCommand) Machine {
	m := Machine{CPUs: runtime.NumCPU(), CPUModel: cpuModel(), Kernel: firstLine("/proc/sys/kernel/osrelease"), Load: LoadAverage()}
	for _, t := range tools {
		m.Versions = append(m.Versions, ToolVersion{Name: t.Name, Version: t.version()})
	}
	return m
}

// ToolCommand says how to ask a tool for its version: Argv's output
// (standard output and error together), its first line, with Trim removed
// from its start and everything from Cut on removed.
type ToolCommand struct {
	Name      string
	Argv      []string
	Trim, Cut string
}

func (t ToolCommand) version() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, t.Argv[0], t.Argv[1:]...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if t.Cut != "" {
		line, _, _ = strings.Cut(line, t.Cut)
	}
	line = strings.TrimSpace(strings.TrimPrefix(line, t.Trim))
	if line == "" {
		if err != nil {
			return "unknown (" + err.Error() + ")"
		}
		return "unknown"
	}
	return line
}

// LoadAverage returns the 1, 5 and 15-minute load averages.
func LoadAverage() string {
	f := strings.Fields(firstLine("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func firstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}
