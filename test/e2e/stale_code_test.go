package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/test/e2e/framework"
)

// TestDevsyncRestartRunsTheSavedCode: two edits of demo.py of the same size
// within one second (x + y, then x - y, then x * y) are both run by the
// restarted app. Python checks the .pyc it wrote for x - y against the
// source by size and mtime in whole seconds, which x * y shares: without
// the agent removing the caches derived from the files it replaces, the
// restarted interpreter ran x - y again. The edits get mtimes in the same
// second (written beside the tree, then renamed into it), so the racy case
// is hit on every run, not by luck.
func TestDevsyncRestartRunsTheSavedCode(t *testing.T) {
	ns := env.Namespace(t)
	env.CreateDeployment(t, ns, env.DemoDeployment("demo", env.Image("demo-python", "latest")))
	devpatchOK(t, ns, "deploy/demo", "--supervise")

	local := t.TempDir()
	copyDir(t, filepath.Join(env.Root, "hack/images/demo-python"), local)
	url := fmt.Sprintf("http://127.0.0.1:%d/add/2/3", sshForward(t, ns, "deploy/demo", framework.DemoPort))
	waitHTTP(t, url, "5", 30*time.Second)

	t.Cleanup(func() {
		if t.Failed() { // what the interpreter found
			r := devssh(t, ns, nil, "deploy/demo", "--", "sh", "-c", "ls -la --time-style=full-iso /app/e2e_k8s /app/e2e_k8s/__pycache__")
			t.Logf("the app's tree:\n%s%s", r.Stdout, r.Stderr)
		}
	})
	w := startDevsync(t, ns, local, "deploy/demo", "--dest", "/app", "--restart", "--verbose")
	demo := filepath.Join(local, "e2e_k8s", "demo.py")
	src, err := os.ReadFile(demo)
	if err != nil {
		t.Fatal(err)
	}
	const orig = "Response(str(x + y))"
	if !strings.Contains(string(src), orig) {
		t.Fatalf("demo.py has no %s", orig)
	}
	// The two edits' mtimes: 0.1 s and 0.4 s into the same second.
	second := time.Now().Truncate(time.Second)
	edit := sameSizeEditor(t, demo, src, orig)
	restarts := func() int { return strings.Count(w.stdout.String(), "restarted the app") }
	before := restarts()

	start := time.Now()
	edit("-", second.Add(100*time.Millisecond))
	// The answer comes from the restarted interpreter, which has written
	// __pycache__/demo.*.pyc keyed by this second and this size.
	waitHTTP(t, url, "-1", 60*time.Second)
	edit("*", second.Add(400*time.Millisecond))
	waitOutput(t, w.stdout, "the second restart", func(string) bool { return restarts() >= before+2 })
	waitHTTP(t, url, "6", 30*time.Second)
	// --verbose lists what the agent removed, after each edit.
	if n := strings.Count(w.stdout.String(), "/app/e2e_k8s/__pycache__/demo.cpython-"); n < 2 {
		t.Errorf("devsync --verbose listed %d removals of demo.py's cache, want 2:\n%s", n, w.stdout.String())
	}
	t.Logf("x + y -> x - y -> x * y, same size, same second: answered 6 %s after the first edit", time.Since(start))
	w.stop(t)
}

// sameSizeEditor returns a function that replaces orig in src by x OP y,
// same size, and puts the result at demo with mtime: written beside the
// synced tree, its mtime set, then renamed into it, so the watcher sees
// the final mtime at once.
func sameSizeEditor(t *testing.T, demo string, src []byte, orig string) func(op string, mtime time.Time) {
	outside := t.TempDir() // same filesystem as the synced tree, not watched
	return func(op string, mtime time.Time) {
		t.Helper()
		edited := strings.Replace(string(src), orig, "Response(str(x "+op+" y))", 1)
		if len(edited) != len(src) {
			t.Fatalf("edit %q changes the size", op)
		}
		tmp := filepath.Join(outside, "demo.py")
		if err := os.WriteFile(tmp, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, demo); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDevsyncExecRunsTheSavedCode: the rule holds for --exec too (and so
// for anything that starts an interpreter after a batch): x - y, then
// x * y of the same size in the same second, each synced with --once
// --exec running a Python that imports the module and disassembles add.
// The first import writes __pycache__/demo.*.pyc keyed by that second and
// that size; the second must not run it.
func TestDevsyncExecRunsTheSavedCode(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-python", "latest"), false)
	local := t.TempDir()
	copyDir(t, filepath.Join(env.Root, "hack/images/demo-python"), local)
	demo := filepath.Join(local, "e2e_k8s", "demo.py")
	src, err := os.ReadFile(demo)
	if err != nil {
		t.Fatal(err)
	}
	const orig = "Response(str(x + y))"
	if !strings.Contains(string(src), orig) {
		t.Fatalf("demo.py has no %s", orig)
	}
	edit := sameSizeEditor(t, demo, src, orig)
	second := time.Now().Truncate(time.Second)
	// BINARY_OP 10 (-) or 5 (*) in CPython 3.11's disassembly.
	const show = `cd /app && python3 -c 'import dis, e2e_k8s.demo as d; dis.dis(d.add)' | grep -o 'BINARY_OP.*'`
	for _, c := range []struct {
		op   string
		at   time.Duration
		want string
	}{{"-", 100 * time.Millisecond, "(-)"}, {"*", 400 * time.Millisecond, "(*)"}} {
		edit(c.op, second.Add(c.at))
		r := devsyncOK(t, ns, local, "deploy/demo", "--dest", "/app", "--once", "--verbose", "--exec", show)
		if !strings.Contains(r.Stdout, "write   e2e_k8s/demo.py") {
			t.Fatalf("x %s y was not synced: %s", c.op, r.Stdout)
		}
		if !strings.Contains(r.Stdout, c.want) {
			t.Fatalf("after x %s y, the interpreter ran:\n%s", c.op, r.Stdout)
		}
	}
}
