package zkgate_test

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// No Docker engine runs where the tests run, so the image build is checked
// as far as it can be without one: the build context .dockerignore leaves,
// the inputs of every COPY, the Dockerfile's own go build command run in a
// copy of that context, and the binaries it makes (static, as the
// distroless image needs).

// dockerInstruction is one instruction of the Dockerfile, continuation lines
// joined.
type dockerInstruction struct {
	cmd, args string
	line      int
}

func readDockerfile(t *testing.T) []dockerInstruction {
	t.Helper()
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []dockerInstruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dockerignore returns a matcher of .dockerignore's patterns (Docker's
// syntax as this file uses it: a path or glob from the root, a trailing /,
// ** for any depth; no ! exceptions).
func dockerignore(t *testing.T) func(path string) bool {
	t.Helper()
	data, err := os.ReadFile(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var res []*regexp.Regexp
	for _, p := range strings.Split(string(data), "\n") {
		p = strings.TrimSpace(p)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if strings.HasPrefix(p, "!") {
			t.Fatalf(".dockerignore: exceptions (%s) are not understood by this check", p)
		}
		p = strings.TrimSuffix(p, "/")
		var b strings.Builder
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				b.WriteString("(.*/)?")
				i += 2
			case p[i] == '*':
				b.WriteString("[^/]*")
			case p[i] == '?':
				b.WriteString("[^/]")
			default:
				b.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		res = append(res, regexp.MustCompile("^"+b.String()+"(/.*)?$"))
	}
	return func(path string) bool {
		for _, re := range res {
			if re.MatchString(path) {
				return true
			}
		}
		return false
	}
}

// buildContext returns the files of the repository that .dockerignore
// leaves in the build context (slash-separated, relative).
func buildContext(t *testing.T) []string {
	t.Helper()
	ignored := dockerignore(t)
	var files []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(p)
		if rel == "." {
			return nil
		}
		if ignored(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestDockerImageBuildsFromItsContext(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both commands")
	}
	steps := readDockerfile(t)
	context := buildContext(t)
	inContext := func(src string) bool {
		src = strings.TrimSuffix(strings.TrimPrefix(src, "./"), "/")
		for _, f := range context {
			if src == "." || f == src || strings.HasPrefix(f, src+"/") {
				return true
			}
		}
		return false
	}
	for _, must := range []string{"go.mod", "go.sum", "cmd/zkgate/main.go", "cmd/echo-backend/main.go", "configs/gateway.docker.yaml",
		"configs/gateway.fleet.yaml", "configs/fleet.yaml"} {
		if !inContext(must) {
			t.Errorf("%s is not in the build context (.dockerignore)", must)
		}
	}

	// The build stage's commands that make /out, the go build among them.
	var builds []string
	var fromBuild []string
	for _, s := range steps {
		var flags, fields []string
		for _, f := range strings.Fields(s.args) {
			if strings.HasPrefix(f, "--") {
				flags = append(flags, f)
			} else {
				fields = append(fields, f)
			}
		}
		switch {
		case s.cmd == "COPY" && slices.Contains(flags, "--from=build"):
			fromBuild = append(fromBuild, fields[:len(fields)-1]...)
		case s.cmd == "COPY":
			for _, src := range fields[:len(fields)-1] {
				if !inContext(src) {
					t.Errorf("Dockerfile:%d: COPY %s: nothing in the build context", s.line, src)
				}
			}
		case s.cmd == "RUN" && strings.Contains(s.args, "/out"):
			builds = append(builds, s.args)
		}
	}
	if !slices.ContainsFunc(builds, func(b string) bool { return strings.Contains(b, "go build") }) {
		t.Fatal("Dockerfile: no RUN with go build into /out")
	}

	// The Dockerfile's go build, in a copy of the build context.
	dir := t.TempDir()
	for _, f := range context {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, "src", filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	for _, build := range builds {
		cmd := strings.ReplaceAll(strings.ReplaceAll(build, "/out", out), "${VERSION}", "imagecheck")
		c := exec.Command("sh", "-c", cmd)
		c.Dir = filepath.Join(dir, "src")
		if msg, err := c.CombinedOutput(); err != nil {
			t.Fatalf("the Dockerfile's build in its context: %s: %v\n%s", cmd, err, msg)
		}
	}
	for _, src := range fromBuild {
		bin := filepath.Join(out, strings.TrimPrefix(src, "/out/"))
		fi, err := os.Stat(bin)
		if err != nil {
			t.Errorf("COPY --from=build %s: %v", src, err)
			continue
		}
		if fi.IsDir() {
			continue
		}
		f, err := elf.Open(bin)
		if err != nil {
			t.Errorf("COPY --from=build %s: %v", src, err)
			continue
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked: the distroless static image cannot run it", src)
			}
		}
		f.Close()
	}
	if !slices.Contains(fromBuild, "/out/zkgate") || !slices.Contains(fromBuild, "/out/echo-backend") {
		t.Errorf("the final stage copies %v from the build; want zkgate and echo-backend", fromBuild)
	}
}
