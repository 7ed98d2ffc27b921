package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentconn"
	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/portforward"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshclient"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
	"github.com/kubectl-dev/kubectl-dev/test/e2e/framework"
)

// devsync runs "kubectl devsync -n ns ARGS..." to its end.
func devsync(t *testing.T, ns string, args ...string) framework.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r, err := env.Run(ctx, nil, env.Kubectl, append([]string{"devsync", "-n", ns}, args...)...)
	if err != nil {
		t.Fatalf("kubectl devsync %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("kubectl devsync %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.ExitCode, r.Stdout, r.Stderr)
	return r
}

func devsyncOK(t *testing.T, ns string, args ...string) framework.Result {
	t.Helper()
	r := devsync(t, ns, args...)
	if r.ExitCode != 0 {
		t.Fatalf("kubectl devsync %s exited %d: %s", strings.Join(args, " "), r.ExitCode, r.Stderr)
	}
	return r
}

// watchingDevsync is a "kubectl devsync" running in the background.
type watchingDevsync struct {
	cmd            *exec.Cmd
	stdout, stderr *framework.LockedBuffer
	done           chan error
}

// startDevsync starts a watching devsync and waits until it watches; it
// is stopped (SIGINT) when the test ends, or by stop.
func startDevsync(t *testing.T, ns string, args ...string) *watchingDevsync {
	t.Helper()
	return startDevsyncUntil(t, ns, "watching ", args...)
}

// startDevsyncUntil is startDevsync that returns once stderr shows ready.
func startDevsyncUntil(t *testing.T, ns, ready string, args ...string) *watchingDevsync {
	t.Helper()
	w := &watchingDevsync{stdout: &framework.LockedBuffer{}, stderr: &framework.LockedBuffer{}, done: make(chan error, 1)}
	w.cmd = exec.Command(env.Kubectl, append([]string{"devsync", "-n", ns}, args...)...)
	w.cmd.Stdout, w.cmd.Stderr = w.stdout, w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- w.cmd.Wait() }()
	t.Cleanup(func() { w.stop(t) })
	waitOutput(t, w.stderr, fmt.Sprintf("devsync to print %q", ready), func(s string) bool { return strings.Contains(s, ready) })
	return w
}

func (w *watchingDevsync) stop(t *testing.T) {
	if w.cmd.ProcessState != nil {
		return
	}
	_ = w.cmd.Process.Signal(os.Interrupt)
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
	}
	t.Logf("devsync stdout:\n%s\ndevsync stderr:\n%s", w.stdout.String(), w.stderr.String())
}

// remoteTreeScript lists the tree at $1 in the app's view: "D path",
// "F sha256 path" and "L target path" lines, sorted.
const remoteTreeScript = `cd "${DEVSSH_APP_ROOT}$1" || exit 3
find . -mindepth 1 | LC_ALL=C sort | while IFS= read -r f; do
  if [ -L "$f" ]; then echo "L $(readlink "$f") ${f#./}"
  elif [ -d "$f" ]; then echo "D ${f#./}"
  elif [ -f "$f" ]; then echo "F $(sha256sum < "$f" | cut -d' ' -f1) ${f#./}"
  else echo "O ${f#./}"; fi
done`

// remoteTree is the tree at dir in the app container of ref (devssh).
func remoteTree(t *testing.T, ns, ref, dir string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := env.Run(ctx, nil, env.Kubectl, "devssh", "-n", ns, ref, "--", "sh", "-c", remoteTreeScript, "tree", dir)
	if err != nil {
		return nil, err
	}
	if r.ExitCode != 0 {
		return nil, fmt.Errorf("listing %s: exit %d: %s", dir, r.ExitCode, r.Stderr)
	}
	return splitLines(r.Stdout), nil
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// localTree lists dir as remoteTreeScript does.
func localTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, "L "+target+" "+rel)
		case fi.IsDir():
			out = append(out, "D "+rel)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out = append(out, "F "+hex.EncodeToString(sum[:])+" "+rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// waitSameTree waits until the app container's dir equals the local tree.
func waitSameTree(t *testing.T, ns, ref, dir, local string, timeout time.Duration) {
	t.Helper()
	var last []string
	env.WaitFor(t, fmt.Sprintf("%s:%s to equal %s", ref, dir, local), timeout, func(ctx context.Context) (bool, error) {
		want := localTree(t, local)
		got, err := remoteTree(t, ns, ref, dir)
		if err != nil {
			return false, err
		}
		last = got
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			return false, fmt.Errorf("trees differ:\nlocal:\n%s\nremote:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
		}
		return true, nil
	})
	_ = last
}

func mustWrite(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies the regular files and directories of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if strings.Contains(rel, "__pycache__") {
			return nil
		}
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(filepath.Join(dst, rel), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		// As a checkout from a while ago: an edit made within the same
		// second, of the same size, would look unchanged to Python's
		// timestamp-based .pyc check.
		old := time.Now().Add(-time.Hour)
		return os.Chtimes(filepath.Join(dst, rel), old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func appRestarts(t *testing.T, p *corev1.Pod) int32 {
	t.Helper()
	cur, err := env.Client.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range cur.Status.ContainerStatuses {
		if cs.Name == "app" {
			return cs.RestartCount
		}
	}
	t.Fatalf("pod %s has no app container status", p.Name)
	return 0
}

// waitHTTP waits until GET url answers want.
func waitHTTP(t *testing.T, url, want string, timeout time.Duration) {
	t.Helper()
	env.WaitFor(t, fmt.Sprintf("GET %s to answer %q", url, want), timeout, func(ctx context.Context) (bool, error) {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		got, err := httpBody(rctx, url)
		if err != nil {
			return false, err
		}
		if got != want {
			return false, fmt.Errorf("answered %q", got)
		}
		return true, nil
	})
}

// TestDevsyncSuperviseRestart is the main story: devpatch --supervise, then
// devsync --restart; an edit of demo.py changes what /add/2/3 answers,
// without a container restart; --remove leaves the spec as it was.
func TestDevsyncSuperviseRestart(t *testing.T) {
	ns := env.Namespace(t)
	env.CreateDeployment(t, ns, env.DemoDeployment("demo", env.Image("demo-python", "latest")))
	before := rawSpec(t, ns, "demo")

	devpatchOK(t, ns, "deploy/demo", "--supervise")
	d := getDeployment(t, ns, "demo")
	app := appContainer(t, d.Spec.Template.Spec)
	if want := "/.devagent/devagent supervise --socket /.devagent/ctl.sock -- python3 -m e2e_k8s.demo"; strings.Join(app.Command, " ") != want {
		t.Fatalf("app command %q, want %q", app.Command, want)
	}
	if len(d.Spec.Template.Spec.InitContainers) != 1 {
		t.Fatalf("init containers: %+v", d.Spec.Template.Spec.InitContainers)
	}
	// A re-run changes nothing.
	if r := devpatchOK(t, ns, "deploy/demo", "--supervise"); !strings.Contains(r.Stdout, "unchanged") {
		t.Errorf("re-run of devpatch --supervise: %s", r.Stdout)
	}
	pod := agentPod(t, ns, "demo")
	restarts := appRestarts(t, &pod)

	local := t.TempDir()
	copyDir(t, filepath.Join(env.Root, "hack/images/demo-python"), local)
	// The app's port through devssh -L (over the API server's port-forward):
	// kubectl port-forward ends at the first connection the restarting app
	// refuses, a forward of the SSH connection only fails that connection.
	url := fmt.Sprintf("http://127.0.0.1:%d/add/2/3", sshForward(t, ns, "deploy/demo", framework.DemoPort))
	waitHTTP(t, url, "5", 30*time.Second)

	w := startDevsync(t, ns, local, "deploy/demo", "--dest", "/app", "--restart")
	demo := filepath.Join(local, "e2e_k8s", "demo.py")
	src, err := os.ReadFile(demo)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(src), "Response(str(x + y))", "Response(str(x * y))", 1)
	if edited == string(src) {
		t.Fatal("demo.py has no Response(str(x + y))")
	}
	start := time.Now()
	mustWrite(t, demo, edited, 0o644)
	waitHTTP(t, url, "6", 60*time.Second)
	t.Logf("edit to new answer: %s", time.Since(start))
	if got := appRestarts(t, &pod); got != restarts {
		t.Errorf("app container restartCount %d, was %d: the app was restarted by restarting its container", got, restarts)
	}
	if now := agentPod(t, ns, "demo"); now.Name != pod.Name {
		t.Errorf("the pod was replaced: %s -> %s", pod.Name, now.Name)
	}
	// A second edit restarts it again (not only the first). (Edits of the
	// same size within one second: TestDevsyncRestartRunsTheSavedCode.)
	mustWrite(t, demo, strings.Replace(string(src), "Response(str(x + y))", "Response(str((x - y)))", 1), 0o644)
	waitHTTP(t, url, "-1", 60*time.Second)
	waitOutput(t, w.stdout, "a restart line", func(s string) bool { return strings.Count(s, "restarted the app") >= 2 })
	w.stop(t)

	devpatchOK(t, ns, "deploy/demo", "--remove")
	env.WaitRollout(t, ns, "demo", 3*time.Minute)
	if after := rawSpec(t, ns, "demo"); after != before {
		t.Fatalf("the spec differs after --remove:\nbefore: %s\nafter:  %s", before, after)
	}
}

// TestDevpatchSuperviseUserCommand: a container with its own command is
// wrapped, and --remove gives its command back byte for byte.
func TestDevpatchSuperviseUserCommand(t *testing.T) {
	ns := env.Namespace(t)
	d := env.DemoDeployment("demo", env.Image("demo-python", "latest"))
	d.Spec.Template.Spec.Containers[0].Command = []string{"python3", "-m"}
	d.Spec.Template.Spec.Containers[0].Args = []string{"e2e_k8s.demo"}
	env.CreateDeployment(t, ns, d)
	before := rawSpec(t, ns, "demo")
	devpatchOK(t, ns, "deploy/demo", "--supervise")
	app := appContainer(t, getDeployment(t, ns, "demo").Spec.Template.Spec)
	if strings.Join(app.Command, " ") != "/.devagent/devagent supervise --socket /.devagent/ctl.sock -- python3 -m" || strings.Join(app.Args, " ") != "e2e_k8s.demo" {
		t.Fatalf("command %q args %q", app.Command, app.Args)
	}
	pod := agentPod(t, ns, "demo")
	if out := inAgent(t, ns, pod.Name, "ps -o args"); !strings.Contains(out, "supervise") || !strings.Contains(out, "e2e_k8s.demo") {
		t.Fatalf("processes:\n%s", out)
	}
	devpatchOK(t, ns, "deploy/demo", "--remove")
	env.WaitRollout(t, ns, "demo", 3*time.Minute)
	if after := rawSpec(t, ns, "demo"); after != before {
		t.Fatalf("the spec differs after --remove:\nbefore: %s\nafter:  %s", before, after)
	}
}

// syncTree writes the tree of TestDevsyncOnce.
func syncTree(t *testing.T, dir string) {
	mustWrite(t, filepath.Join(dir, "a/b/c/deep.txt"), "deep\n", 0o644)
	mustWrite(t, filepath.Join(dir, "with space/file name.txt"), "spaces\n", 0o644)
	mustWrite(t, filepath.Join(dir, "ünïcödé/日本語.txt"), "non-ascii\n", 0o644)
	mustWrite(t, filepath.Join(dir, "empty"), "", 0o644)
	mustWrite(t, filepath.Join(dir, "run.sh"), "#!/bin/sh\necho hi\n", 0o755)
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB, several chunks
	mustWrite(t, filepath.Join(dir, "data/big.bin"), big, 0o600)
	if err := os.Symlink("a/b/c/deep.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
}

// TestDevsyncOnce: nested directories, names with spaces and non-ASCII
// characters, an empty file, a symlink, modes; then renames and deletes.
func TestDevsyncOnce(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-python", "latest"), false)
	local := t.TempDir()
	syncTree(t, local)
	// zstd here; the runs below take the default, auto, which decides
	// from the round trip it measures (on this machine's cluster: none).
	r := devsyncOK(t, ns, local, "deploy/demo", "--dest", "/srv/synced", "--once", "--compress", "zstd", "-v=1")
	if !strings.Contains(r.Stdout, "synced 7 files") {
		t.Errorf("stdout: %q", r.Stdout)
	}
	if !strings.Contains(r.Stderr, "compressed with zstd") {
		t.Errorf("--compress zstd -v does not say so: %q", r.Stderr)
	}
	waitSameTree(t, ns, "deploy/demo", "/srv/synced", local, 30*time.Second)
	modes := devsshOK(t, ns, "deploy/demo", "--", "stat", "-c", "%a %n", "/srv/synced/run.sh", "/srv/synced/data/big.bin")
	if !strings.Contains(modes, "755 /srv/synced/run.sh") || !strings.Contains(modes, "600 /srv/synced/data/big.bin") {
		t.Errorf("modes: %s", modes)
	}

	// Renames, deletes, an edit; --delete makes the remote tree equal.
	if err := os.Rename(filepath.Join(local, "with space"), filepath.Join(local, "renamed dir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(local, "empty")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(local, "a/b")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(local, "ünïcödé/日本語.txt"), "changed\n", 0o644)
	r = devsyncOK(t, ns, local, "deploy/demo", "--dest", "/srv/synced", "--once", "--delete", "-v=1")
	if want := fmt.Sprintf("on %d lanes", filesync.DefaultLanes); !strings.Contains(r.Stderr, want) {
		t.Errorf("-v does not say %q: %q", want, r.Stderr)
	}
	// auto decides from the handshake's round trip, and says so with it
	// (1-2 ms here: not compressed, unless the machine is very loaded).
	if want := "(auto: the round trip to the agent is "; !strings.Contains(r.Stderr, want) {
		t.Errorf("-v does not say %q: %q", want, r.Stderr)
	}
	waitSameTree(t, ns, "deploy/demo", "/srv/synced", local, 30*time.Second)

	// A second run has nothing to do.
	if r := devsyncOK(t, ns, local, "deploy/demo", "--dest", "/srv/synced", "--once", "--delete"); !strings.Contains(r.Stdout, "up to date") {
		t.Errorf("second run: %q", r.Stdout)
	}

	// --exec runs a command in the app's view after a batch that changed something.
	mustWrite(t, filepath.Join(local, "requirements.txt"), "pyramid\n", 0o644)
	r = devsyncOK(t, ns, local, "deploy/demo", "--dest", "/srv/synced", "--once", "--exec", "cd /srv/synced && wc -l < requirements.txt > lines && echo exec ran as $(id -u)")
	if !strings.Contains(r.Stdout, "exec ran as 0") {
		t.Errorf("--exec output: %q", r.Stdout)
	}
	if out := devsshOK(t, ns, "deploy/demo", "--", "cat", "/srv/synced/lines"); strings.TrimSpace(out) != "1" {
		t.Errorf("--exec wrote %q", out)
	}
}

// TestDevsyncUnpatched: one line saying to run devpatch first.
func TestDevsyncUnpatched(t *testing.T) {
	ns := env.Namespace(t)
	env.CreateDeployment(t, ns, env.DemoDeployment("demo", env.Image("demo-python", "latest")))
	r := devsync(t, ns, t.TempDir(), "deploy/demo", "--once")
	// The remedy carries the -n the user gave: pasting it patches this namespace.
	if r.ExitCode == 0 || !strings.Contains(r.Stderr, "kubectl devpatch -n "+ns+" deploy/demo") || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
		t.Fatalf("exit %d, stderr %q", r.ExitCode, r.Stderr)
	}
}

// TestDevsyncDistroless: demo-go has no shell and no tar.
func TestDevsyncDistroless(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-go", "latest"), false)
	local := t.TempDir()
	syncTree(t, local)
	devsyncOK(t, ns, local, "deploy/demo", "--dest", "/data", "--once")
	waitSameTree(t, ns, "deploy/demo", "/data", local, 30*time.Second)
}

// TestDevsyncNonRootOwnership: files synced into a uid 1000 app are owned by
// 1000:1000.
func TestDevsyncNonRootOwnership(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-python", "latest"), true)
	local := t.TempDir()
	mustWrite(t, filepath.Join(local, "sub/f.txt"), "x\n", 0o644)
	devsyncOK(t, ns, local, "deploy/demo", "--dest", "/tmp/nr", "--once")
	// Same-user mode: the agent's shell, the app's files under $DEVSSH_APP_ROOT.
	out := devsshOK(t, ns, "deploy/demo", "--", "sh", "-c", `cd "${DEVSSH_APP_ROOT}/tmp/nr" && stat -c "%u:%g %n" sub sub/f.txt`)
	if len(splitLines(out)) != 2 {
		t.Fatalf("stat: %q", out)
	}
	for _, l := range splitLines(out) {
		if !strings.HasPrefix(l, "1000:1000 ") {
			t.Errorf("owner: %s", l)
		}
	}
}

// TestDevsyncHostile: an absolute symlink in the app's tree resolves in the
// app's root, never in the agent's; a client that sends "../" is refused.
func TestDevsyncHostile(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-python", "latest"), false)
	devsshOK(t, ns, "deploy/demo", "--", "sh", "-c", "mkdir -p /srv/h && ln -s /etc /srv/h/link")
	local := t.TempDir()
	mustWrite(t, filepath.Join(local, "link/devsync-escape"), "x\n", 0o644)
	devsync(t, ns, local, "deploy/demo", "--dest", "/srv/h", "--once")
	pod := agentPod(t, ns, "demo")
	if out := inAgent(t, ns, pod.Name, "ls /etc/devsync-escape 2>&1 || echo absent"); !strings.Contains(out, "absent") {
		t.Fatalf("the agent's /etc was written: %s", out)
	}

	// A crafted client: List("../..") over a real devssh connection.
	c := rawDevsyncClient(t, ns, "deploy/demo")
	err := c.List(context.Background(), "../..", func(syncproto.Entry) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "..") {
		t.Fatalf("List(\"../..\"): %v, want a refusal naming \"..\"", err)
	}
	t.Logf("the agent refused: %v", err)
}

// rawDevsyncClient opens the devsync subsystem of deploy/NAME in-process.
func rawDevsyncClient(t *testing.T, ns, ref string) *filesync.Client {
	t.Helper()
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(ref, "deploy/")
	obj, err := env.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obj.Kind, obj.APIVersion = "Deployment", "apps/v1"
	tg, err := agentconn.Resolve(ctx, env.Client, obj, agentconn.ResolveOptions{Ref: ref, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	dialer, err := portforward.NewDialer(cfg, portforward.URL(env.Client.CoreV1().RESTClient(), ns, tg.Pod.Name))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := portforward.Dial(dialer, portforward.Target{Namespace: ns, Pod: tg.Pod.Name, Port: wire.Port})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sshclient.LoadSigner(filepath.Join(keys.Dir(env.Kubeconfig, ""), keys.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := sshclient.NewClient(conn, sshclient.Config{Signer: signer, HostKey: tg.HostKey, HostKeySource: "secret/" + tg.SecretName})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	sess, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range tg.Env("") {
		k, v, _ := strings.Cut(kv, "=")
		if err := sess.Setenv(k, v); err != nil {
			t.Fatal(err)
		}
	}
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem("devsync"); err != nil {
		t.Fatal(err)
	}
	c, err := filesync.NewClient(ctx, struct {
		io.Reader
		io.Writer
	}{out, in}, filesync.ClientOptions{Dest: "/srv", Name: "e2e-hostile"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDevsyncFollowsThePod: delete the pod during a watch, then kill the
// app's process (its container restarts, losing the synced files): devsync
// follows and syncs again until the container matches the local tree.
func TestDevsyncFollowsThePod(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-python", "latest"), false)
	local := t.TempDir()
	syncTree(t, local)
	// Enough files for the initial sync to take a while: an edit made
	// once it has begun (the scan is done by then) is not lost (the
	// watch starts before the scan).
	for i := range 2000 {
		mustWrite(t, filepath.Join(local, fmt.Sprintf("filler/%02d/f%04d.txt", i/100, i)), strings.Repeat("x", 2000)+"\n", 0o644)
	}
	w := startDevsyncUntil(t, ns, "syncing ", local, "deploy/demo", "--dest", "/srv/w")
	mustWrite(t, filepath.Join(local, "a/b/c/deep.txt"), "edited during the initial sync\n", 0o644)
	waitOutput(t, w.stderr, "devsync to watch", func(s string) bool { return strings.Contains(s, "watching ") })
	waitSameTree(t, ns, "deploy/demo", "/srv/w", local, time.Minute)

	pod := agentPod(t, ns, "demo")
	if err := env.Client.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Edits while the pod is replaced are not lost.
	mustWrite(t, filepath.Join(local, "during/replace.txt"), "made while the pod was replaced\n", 0o644)
	mustWrite(t, filepath.Join(local, "a/b/c/deep.txt"), "edited while the pod was replaced\n", 0o644)
	env.WaitFor(t, "a new pod with a ready agent", 3*time.Minute, func(ctx context.Context) (bool, error) {
		for _, p := range env.RunningPods(t, ns, "demo") {
			if p.Name != pod.Name {
				for _, st := range p.Status.ContainerStatuses {
					if st.Name == "devagent" && st.Ready {
						return true, nil
					}
				}
			}
		}
		return false, nil
	})
	waitSameTree(t, ns, "deploy/demo", "/srv/w", local, 2*time.Minute)

	// Kill the app's process: its container restarts from the image.
	pod = agentPod(t, ns, "demo")
	restarts := appRestarts(t, &pod)
	inAgent(t, ns, pod.Name, appPID+`; kill -9 "$pid"`)
	env.WaitFor(t, "the app container to restart", 2*time.Minute, func(ctx context.Context) (bool, error) {
		return appRestarts(t, &pod) > restarts, nil
	})
	mustWrite(t, filepath.Join(local, "after/kill.txt"), "made after the kill\n", 0o644)
	waitSameTree(t, ns, "pod/"+pod.Name, "/srv/w", local, 2*time.Minute)

	// No pod at all: devsync waits for one; Ctrl-C then ends it cleanly
	// (exit 0; it once panicked here, closing the session it did not have).
	scale := `{"spec":{"replicas":0}}`
	if _, err := env.Client.AppsV1().Deployments(ns).Patch(context.Background(), "demo", types.MergePatchType, []byte(scale), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, w.stderr, "devsync to wait for a pod of deploy/demo", func(s string) bool {
		return strings.Contains(s, "waiting for deploy/demo")
	})
	if err := w.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-w.done:
		w.done <- err
		if err != nil || strings.Contains(w.stderr.String(), "panic") {
			t.Fatalf("devsync interrupted while waiting for a pod: %v\nstderr:\n%s", err, w.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("devsync did not end within 30s of Ctrl-C while waiting for a pod; stderr:\n%s", w.stderr.String())
	}
}

// httpBody is one GET's trimmed body (an error for a status other than 200).
func httpBody(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := freshConnections.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return strings.TrimSpace(string(b)), nil
}

// freshConnections opens a connection per request: a kept-alive one may
// lead to the app process that a restart just stopped.
var freshConnections = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func appContainer(t *testing.T, spec corev1.PodSpec) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == "app" {
			return c
		}
	}
	t.Fatal("no app container")
	return corev1.Container{}
}

// TestDevsyncReadOnlyRootFS: one clear error, naming the remedy.
func TestDevsyncReadOnlyRootFS(t *testing.T) {
	ns := env.Namespace(t)
	d := env.DemoDeployment("demo", env.Image("demo-python", "latest"))
	d.Spec.Template.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(true)}
	env.CreateDeployment(t, ns, d)
	devpatchOK(t, ns, "deploy/demo")
	local := t.TempDir()
	mustWrite(t, filepath.Join(local, "a.txt"), "a\n", 0o644)
	mustWrite(t, filepath.Join(local, "b.txt"), "b\n", 0o644)
	r := devsync(t, ns, local, "deploy/demo", "--dest", "/app", "--once")
	errLines := splitLines(r.Stderr)
	var errs []string
	for _, l := range errLines {
		if strings.HasPrefix(l, "error:") {
			errs = append(errs, l)
		}
	}
	if r.ExitCode == 0 || len(errs) != 1 || !strings.Contains(strings.ToLower(errs[0]), "read-only") {
		t.Fatalf("exit %d, stderr:\n%s", r.ExitCode, r.Stderr)
	}
}

// sshForward runs "kubectl devssh -N -L" to the pod's remotePort until the
// test ends and returns the local port once it accepts connections.
func sshForward(t *testing.T, ns, ref string, remotePort int) int {
	t.Helper()
	port := freePort(t)
	var out framework.LockedBuffer
	cmd := exec.Command(env.Kubectl, "devssh", "-n", ns, ref, "-N", "-L", fmt.Sprintf("%d:localhost:%d", port, remotePort))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	env.WaitFor(t, "devssh -L to listen", time.Minute, func(ctx context.Context) (bool, error) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return false, fmt.Errorf("%v (devssh: %s)", err, out.String())
		}
		c.Close()
		return true, nil
	})
	return port
}
