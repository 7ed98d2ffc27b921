package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/test/e2e/framework"
)

// sshDemo deploys a demo image as deploy/demo, patches it with devpatch and
// returns the namespace.
func sshDemo(t *testing.T, image string, nonroot bool) string {
	t.Helper()
	ns := env.Namespace(t)
	d := env.DemoDeployment("demo", image)
	if nonroot {
		d.Spec.Template.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000)}
	}
	env.CreateDeployment(t, ns, d)
	devpatchOK(t, ns, "deploy/demo")
	return ns
}

// devssh runs "kubectl devssh -n ns ARGS..." and returns its outcome.
func devssh(t *testing.T, ns string, stdin []byte, args ...string) framework.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := env.Run(ctx, stdin, env.Kubectl, append([]string{"devssh", "-n", ns}, args...)...)
	if err != nil {
		t.Fatalf("kubectl devssh %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// devsshOK is devssh that must exit 0; it returns stdout.
func devsshOK(t *testing.T, ns string, args ...string) string {
	t.Helper()
	r := devssh(t, ns, nil, args...)
	if r.ExitCode != 0 {
		t.Fatalf("kubectl devssh %s exited %d:\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.ExitCode, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// openSSH is the OpenSSH set-up of a test: a HOME of its own holding the
// block written by "kubectl devssh config --write", and an ssh_config that
// includes it (the user's real ~/.ssh/config is not touched).
type openSSH struct {
	home, config, alias string
}

func setupOpenSSH(t *testing.T, ns string) *openSSH {
	t.Helper()
	o := &openSSH{home: t.TempDir()}
	r := o.run(t, nil, env.Kubectl, "devssh", "-n", ns, "config", "deploy/demo", "--write")
	if r.ExitCode != 0 {
		t.Fatalf("kubectl devssh config --write exited %d: %s", r.ExitCode, r.Stderr)
	}
	include := strings.TrimSpace(r.Stdout)
	if !strings.HasPrefix(include, "Include ") || strings.Count(r.Stdout, "\n") != 1 {
		t.Fatalf("config --write should print one Include line, printed %q", r.Stdout)
	}
	o.alias = "demo." + ns + ".kdev"
	o.config = filepath.Join(o.home, "ssh_config")
	if err := os.WriteFile(o.config, []byte(include+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	block, _ := os.ReadFile(filepath.Join(o.home, ".ssh", "kubectl-dev", o.alias+".conf"))
	t.Logf("ssh_config block:\n%s", block)
	for _, want := range []string{"Host " + o.alias, "ProxyCommand ", "--stdio", "--namespace " + ns, "StrictHostKeyChecking yes", "HostKeyAlias " + o.alias, "IdentityFile ", "UserKnownHostsFile "} {
		if !strings.Contains(string(block), want) {
			t.Errorf("the ssh_config block lacks %q", want)
		}
	}
	return o
}

// run runs a command with HOME set to the test's own.
func (o *openSSH) run(t *testing.T, stdin []byte, name string, args ...string) framework.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "HOME="+o.home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	r := framework.Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.ExitCode = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return r
}

// ssh runs the system's ssh with the test's config.
func (o *openSSH) ssh(t *testing.T, stdin []byte, args ...string) framework.Result {
	t.Helper()
	return o.run(t, stdin, "ssh", append([]string{"-F", o.config, "-o", "BatchMode=yes"}, args...)...)
}

func TestDevsshDemoPython(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-python", "latest"), false)

	t.Run("exit codes and the app's view", func(t *testing.T) {
		if r := devssh(t, ns, nil, "deploy/demo", "--", "sh", "-c", "exit 7"); r.ExitCode != 7 {
			t.Fatalf("exit code = %d, want 7; stderr: %s", r.ExitCode, r.Stderr)
		}
		if r := devssh(t, ns, nil, "deploy/demo", "--", "true"); r.ExitCode != 0 || r.Stderr != "" {
			t.Fatalf("true: exit %d, stderr %q", r.ExitCode, r.Stderr)
		}
		// Arguments reach the remote side as argv, quoting intact.
		if out := devsshOK(t, ns, "deploy/demo", "--", "printf", "%s|", "a b", "it's", "$HOME"); out != "a b|it's|$HOME|" {
			t.Fatalf("argv through devssh = %q", out)
		}
		// The shell is in the app's view: its files, its user, its cwd and env.
		out := devsshOK(t, ns, "deploy/demo", "--", "sh", "-c", `echo "view=$DEVSSH_VIEW uid=$(id -u) cwd=$(pwd)"; test -f /app/e2e_k8s/demo.py && echo has-app; test -e /etc/devagent || echo no-agent-keys; cat /proc/1/cmdline >/dev/null && echo ok`)
		for _, want := range []string{"view=app", "uid=0", "cwd=/app", "has-app", "no-agent-keys"} {
			if !strings.Contains(out, want) {
				t.Errorf("app view: %q lacks %q", out, want)
			}
		}
	})

	t.Run("100 MB through stdin", func(t *testing.T) {
		data := make([]byte, 100<<20)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		want := hex.EncodeToString(sum[:])
		start := time.Now()
		r := devssh(t, ns, data, "deploy/demo", "--", "sha256sum")
		dSSH := time.Since(start)
		if r.ExitCode != 0 || !strings.HasPrefix(r.Stdout, want) {
			t.Fatalf("sha256sum through devssh: exit %d, %q, want %s; stderr %s", r.ExitCode, r.Stdout, want, r.Stderr)
		}
		start = time.Now()
		r = devssh(t, ns, data, "deploy/demo", "--", "cat")
		dCat := time.Since(start)
		if got := sha256.Sum256([]byte(r.Stdout)); r.ExitCode != 0 || got != sum {
			t.Fatalf("cat through devssh returned %d bytes (exit %d), not the 100 MB sent", len(r.Stdout), r.ExitCode)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		start = time.Now()
		re, err := env.Run(ctx, data, env.Kubectl, "-n", ns, "exec", "-i", "deploy/demo", "-c", "app", "--", "sha256sum")
		dExec := time.Since(start)
		if err != nil || !strings.HasPrefix(re.Stdout, want) {
			t.Fatalf("kubectl exec sha256sum: %v %q", err, re.Stdout)
		}
		mbps := func(d time.Duration) float64 { return 100 / d.Seconds() }
		t.Logf("FIGURE 100 MB stdin: devssh %.2fs (%.0f MB/s), devssh round trip (cat) %.2fs, kubectl exec -i %.2fs (%.0f MB/s)",
			dSSH.Seconds(), mbps(dSSH), dCat.Seconds(), dExec.Seconds(), mbps(dExec))
	})

	t.Run("startup time against kubectl exec", func(t *testing.T) {
		median := func(args ...string) time.Duration {
			var ds []time.Duration
			for i := 0; i < 7; i++ {
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				r, err := env.Run(ctx, nil, env.Kubectl, args...)
				cancel()
				if err != nil || r.ExitCode != 0 {
					t.Fatalf("kubectl %s: %v %d %s", strings.Join(args, " "), err, r.ExitCode, r.Stderr)
				}
				ds = append(ds, time.Since(start))
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			return ds[len(ds)/2]
		}
		dSSH := median("devssh", "-n", ns, "deploy/demo", "--", "true")
		dExec := median("-n", ns, "exec", "deploy/demo", "-c", "app", "--", "true")
		t.Logf("FIGURE median of 7: kubectl devssh deploy/demo -- true %v, kubectl exec deploy/demo -- true %v, ratio %.2f",
			dSSH.Round(time.Millisecond), dExec.Round(time.Millisecond), dSSH.Seconds()/dExec.Seconds())
	})

	t.Run("interactive shell through a pty", func(t *testing.T) {
		cmd := exec.Command(env.Kubectl, "devssh", "-n", ns, "deploy/demo")
		cmd.Env = append(os.Environ(), "TERM=xterm")
		ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
		if err != nil {
			t.Fatal(err)
		}
		defer ptmx.Close()
		var out framework.LockedBuffer
		go func() {
			buf := make([]byte, 4096)
			for {
				n, err := ptmx.Read(buf)
				out.Write(buf[:n])
				if err != nil {
					return
				}
			}
		}()
		waitOutput(t, &out, "a prompt", func(s string) bool { return strings.Contains(s, "# ") || strings.Contains(s, "$ ") })
		fmt.Fprint(ptmx, "echo $((6*7))\r")
		waitOutput(t, &out, "42", func(s string) bool { return strings.Contains(s, "\n42\r") || strings.Contains(s, "\r\n42") })
		fmt.Fprint(ptmx, "stty size\r")
		waitOutput(t, &out, "30 100", func(s string) bool { return strings.Contains(s, "30 100") })
		if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), "40 120") {
			if time.Now().After(deadline) {
				t.Fatalf("the resize was not seen by stty size; output:\n%s", out.String())
			}
			fmt.Fprint(ptmx, "stty size\r")
			time.Sleep(500 * time.Millisecond)
		}
		fmt.Fprint(ptmx, "exit 3\r")
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 3 {
				t.Fatalf("exit 3 in the shell: kubectl devssh ended with %v; output:\n%s", err, out.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("the shell did not end after exit 3; output:\n%s", out.String())
		}
	})

	t.Run("OpenSSH through the config block", func(t *testing.T) {
		o := setupOpenSSH(t, ns)
		if r := o.ssh(t, nil, o.alias, "echo", "hello from", "$(id -u)"); r.ExitCode != 0 || strings.TrimSpace(r.Stdout) != "hello from 0" {
			t.Fatalf("ssh: exit %d, stdout %q, stderr %s", r.ExitCode, r.Stdout, r.Stderr)
		}
		if r := o.ssh(t, nil, o.alias, "exit 5"); r.ExitCode != 5 {
			t.Fatalf("ssh exit 5: %d %s", r.ExitCode, r.Stderr)
		}
		local := filepath.Join(o.home, "up.txt")
		os.WriteFile(local, []byte("uploaded by scp\n"), 0o644)
		// scp in sftp mode (-s): the app's image has no scp binary.
		if r := o.run(t, nil, "scp", "-s", "-F", o.config, "-o", "BatchMode=yes", local, o.alias+":/tmp/up.txt"); r.ExitCode != 0 {
			t.Fatalf("scp upload: %d %s", r.ExitCode, r.Stderr)
		}
		if out := devsshOK(t, ns, "deploy/demo", "--", "cat", "/tmp/up.txt"); out != "uploaded by scp\n" {
			t.Fatalf("the file scp uploaded reads %q", out)
		}
		down := filepath.Join(o.home, "down.py")
		if r := o.run(t, nil, "scp", "-s", "-F", o.config, "-o", "BatchMode=yes", o.alias+":/app/e2e_k8s/demo.py", down); r.ExitCode != 0 {
			t.Fatalf("scp download: %d %s", r.ExitCode, r.Stderr)
		}
		if b, _ := os.ReadFile(down); !bytes.Contains(b, []byte("add")) {
			t.Fatalf("downloaded demo.py: %q", b)
		}
		batch := "cd /app\nls\nput " + local + " /tmp/sftp.txt\nget /tmp/sftp.txt " + filepath.Join(o.home, "back.txt") + "\n"
		if r := o.run(t, []byte(batch), "sftp", "-F", o.config, "-o", "BatchMode=yes", "-b", "-", o.alias); r.ExitCode != 0 || !strings.Contains(r.Stdout, "e2e_k8s") {
			t.Fatalf("sftp: %d\n%s\n%s", r.ExitCode, r.Stdout, r.Stderr)
		}
		if b, _ := os.ReadFile(filepath.Join(o.home, "back.txt")); string(b) != "uploaded by scp\n" {
			t.Fatalf("sftp round trip: %q", b)
		}
		// rsync runs `rsync --server` on the remote side, in the app's view:
		// demo-python's image ships rsync, as an app image a developer rsyncs to would.
		dir := filepath.Join(o.home, "tree")
		if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("rsync"), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := o.run(t, nil, "rsync", "-a", "-e", "ssh -F "+o.config+" -o BatchMode=yes", dir+"/", o.alias+":/tmp/tree/"); r.ExitCode != 0 {
			t.Fatalf("rsync -e ssh: exit %d: %s", r.ExitCode, r.Stderr)
		}
		if out := devsshOK(t, ns, "deploy/demo", "--", "cat", "/tmp/tree/sub/f"); out != "rsync" {
			t.Fatalf("rsync result %q", out)
		}
		// ssh -L to the demo's HTTP port.
		port := freePort(t)
		fwd := exec.Command("ssh", "-F", o.config, "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N", "-L", fmt.Sprintf("127.0.0.1:%d:localhost:%d", port, framework.DemoPort), o.alias)
		fwd.Env = append(os.Environ(), "HOME="+o.home)
		var fwdErr bytes.Buffer
		fwd.Stderr = &fwdErr
		if err := fwd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = fwd.Process.Kill(); _ = fwd.Wait() }()
		if body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/add/2/3", port)); body != "5" {
			t.Fatalf("/add/2/3 through ssh -L = %q (ssh: %s)", body, fwdErr.String())
		}
	})

	t.Run("SPDY only, and --ssh", func(t *testing.T) {
		cmd := exec.Command(env.Kubectl, "devssh", "-n", ns, "deploy/demo", "-v=6", "--", "echo", "spdy")
		cmd.Env = append(os.Environ(), "KUBECTL_PORT_FORWARD_WEBSOCKETS=false")
		out, err := cmd.Output()
		var stderr string
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		if err != nil || string(out) != "spdy\n" {
			t.Fatalf("with KUBECTL_PORT_FORWARD_WEBSOCKETS=false: %v %q %s", err, out, stderr)
		}
		o := &openSSH{home: t.TempDir()}
		r := o.run(t, nil, env.Kubectl, "devssh", "-n", ns, "deploy/demo", "--ssh", "--ssh-option", "BatchMode=yes", "--", "sh", "-c", "echo $DEVSSH_VIEW; exit 4")
		if r.ExitCode != 4 || strings.TrimSpace(r.Stdout) != "app" {
			t.Fatalf("--ssh: exit %d, stdout %q, stderr %s", r.ExitCode, r.Stdout, r.Stderr)
		}
	})

	t.Run("built-in -L", func(t *testing.T) {
		port := freePort(t)
		cmd := exec.Command(env.Kubectl, "devssh", "-n", ns, "deploy/demo", "-N", "-L", fmt.Sprintf("%d:localhost:%d", port, framework.DemoPort))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		if body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/add/2/3", port)); body != "5" {
			t.Fatalf("/add/2/3 through devssh -L = %q (%s)", body, stderr.String())
		}
	})

	t.Run("a symlink to /etc stays in the app's files", func(t *testing.T) {
		o := setupOpenSSH(t, ns)
		devsshOK(t, ns, "deploy/demo", "--", "ln", "-sfn", "/etc", "/tmp/etclink")
		// The agent's /etc holds its keys (/etc/devagent); the app's does not.
		r := devssh(t, ns, nil, "deploy/demo", "--", "cat", "/tmp/etclink/devagent/ssh_host_ed25519_key")
		if r.ExitCode == 0 || strings.Contains(r.Stdout, "PRIVATE KEY") {
			t.Fatalf("the shell read the agent's host key through /tmp/etclink: %q", r.Stdout)
		}
		get := "get /tmp/etclink/devagent/ssh_host_ed25519_key " + filepath.Join(o.home, "stolen") + "\n"
		if r := o.run(t, []byte(get), "sftp", "-F", o.config, "-o", "BatchMode=yes", "-b", "-", o.alias); r.ExitCode == 0 {
			t.Fatalf("sftp fetched the agent's host key through a symlink in the app's tree")
		}
		// The symlink does work inside the app's files: its /etc/os-release
		// (Debian's; the agent's busybox image has none).
		getOK := "get /tmp/etclink/os-release " + filepath.Join(o.home, "os-release") + "\n"
		if r := o.run(t, []byte(getOK), "sftp", "-F", o.config, "-o", "BatchMode=yes", "-b", "-", o.alias); r.ExitCode != 0 {
			t.Fatalf("sftp get through the symlink inside the app: %d %s", r.ExitCode, r.Stderr)
		}
		if b, _ := os.ReadFile(filepath.Join(o.home, "os-release")); !bytes.Contains(b, []byte("Debian")) {
			t.Fatalf("os-release through the symlink: %q", b)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		// An unknown key.
		dir := t.TempDir()
		priv, _, err := keys.NewEd25519("stranger")
		if err != nil {
			t.Fatal(err)
		}
		stranger := filepath.Join(dir, "id_stranger")
		os.WriteFile(stranger, priv, 0o600)
		r := devssh(t, ns, nil, "deploy/demo", "--identity", stranger, "--", "true")
		// The remedy carries the -n given, so that pasting it authorizes the key here.
		if r.ExitCode != 255 || !strings.Contains(r.Stderr, "refused the key") || !strings.Contains(r.Stderr, "add it with kubectl devpatch -n "+ns+" deploy/demo") {
			t.Fatalf("unknown key: exit %d, stderr %q", r.ExitCode, r.Stderr)
		}
		o := setupOpenSSH(t, ns)
		// The same block with the stranger's key as the only identity.
		block, err := os.ReadFile(filepath.Join(o.home, ".ssh", "kubectl-dev", o.alias+".conf"))
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(string(block), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "IdentityFile ") {
				l = "  IdentityFile " + stranger
			}
			lines = append(lines, l)
		}
		strangerCfg := filepath.Join(dir, "ssh_config")
		os.WriteFile(strangerCfg, []byte(strings.Join(lines, "\n")), 0o600)
		if r := o.run(t, nil, "ssh", "-F", strangerCfg, "-o", "BatchMode=yes", o.alias, "true"); r.ExitCode != 255 || !strings.Contains(r.Stderr, "Permission denied") {
			t.Fatalf("OpenSSH with an unknown key: exit %d, stderr %q", r.ExitCode, r.Stderr)
		}
		// Password and keyboard-interactive authentication are not offered.
		r = o.ssh(t, nil, "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive", o.alias, "true")
		if r.ExitCode != 255 || !strings.Contains(r.Stderr, "Permission denied (publickey)") {
			t.Fatalf("password auth: exit %d, stderr %q", r.ExitCode, r.Stderr)
		}
		// A changed host key: OpenSSH with a known_hosts file that pins another key.
		_, otherPub, _ := keys.NewEd25519("impostor")
		kh := filepath.Join(dir, "known_hosts")
		os.WriteFile(kh, []byte(o.alias+" "+otherPub+"\n"), 0o600)
		r = o.ssh(t, nil, "-o", "UserKnownHostsFile="+kh, o.alias, "true")
		if r.ExitCode != 255 || !strings.Contains(r.Stderr, "REMOTE HOST IDENTIFICATION HAS CHANGED") && !strings.Contains(r.Stderr, "Host key verification failed") {
			t.Fatalf("changed host key (OpenSSH): exit %d, stderr %q", r.ExitCode, r.Stderr)
		}
	})

	t.Run("the agent's port is loopback only", func(t *testing.T) {
		pod := agentPod(t, ns, "demo")
		probe := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "netprobe"},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: ptr.To[int64](1),
				Containers:                    []corev1.Container{{Name: "probe", Image: env.AgentImage(), Command: []string{"/bin/sleep", "3600"}}},
			},
		}
		if _, err := env.Client.CoreV1().Pods(ns).Create(context.Background(), probe, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		env.WaitFor(t, "pod netprobe running", 2*time.Minute, func(ctx context.Context) (bool, error) {
			p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "netprobe", metav1.GetOptions{})
			return err == nil && p.Status.Phase == corev1.PodRunning, err
		})
		script := fmt.Sprintf(`printf 'GET /add/2/3 HTTP/1.0\r\n\r\n' | nc -w 3 %s %d; echo; echo | nc -w 3 %s 2222 && echo CONNECTED || echo REFUSED`, pod.Status.PodIP, framework.DemoPort, pod.Status.PodIP)
		out := env.KubectlT(t, "-n", ns, "exec", "netprobe", "--", "sh", "-c", script)
		if !strings.Contains(out, "200 OK") {
			t.Fatalf("the probe pod cannot reach the demo at all (%q): the test proves nothing", out)
		}
		if strings.Contains(out, "SSH-2.0") || strings.Contains(out, "CONNECTED") {
			t.Fatalf("the agent's SSH port answers on the pod IP %s:\n%s", pod.Status.PodIP, out)
		}
	})

	t.Run("a user without pods/portforward", func(t *testing.T) {
		env.KubectlT(t, "-n", ns, "create", "role", "ssh-no-pf", "--verb=get,list,watch", "--resource=deployments.apps,replicasets.apps,pods,secrets")
		env.KubectlT(t, "-n", ns, "create", "rolebinding", "carol-no-pf", "--role=ssh-no-pf", "--user=carol")
		r := devssh(t, ns, nil, "deploy/demo", "--as", "carol", "--", "true")
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.ExitCode != 255 || len(lines) != 1 || !strings.Contains(lines[0], "pods/portforward") {
			t.Fatalf("without pods/portforward: exit %d, stderr:\n%s", r.ExitCode, r.Stderr)
		}
	})

	t.Run("the app container restarts", func(t *testing.T) {
		before := strings.TrimSpace(devsshOK(t, ns, "deploy/demo", "--", "sh", "-c", `echo $DEVSSH_APP_PID`))
		// Kill the app: the kubelet restarts its container with a new ID.
		devssh(t, ns, nil, "deploy/demo", "--", "sh", "-c", `kill $DEVSSH_APP_PID`)
		env.WaitFor(t, "the app container to restart and be ready", 2*time.Minute, func(ctx context.Context) (bool, error) {
			for _, p := range env.RunningPods(t, ns, "demo") {
				for _, cs := range p.Status.ContainerStatuses {
					if cs.Name == "app" && cs.RestartCount > 0 && cs.Ready {
						return true, nil
					}
				}
			}
			return false, nil
		})
		out := devsshOK(t, ns, "deploy/demo", "--", "sh", "-c", `echo "$DEVSSH_VIEW $DEVSSH_APP_PID"; test -f /app/e2e_k8s/demo.py && echo has-app`)
		if !strings.HasPrefix(out, "app ") || strings.Contains(out, " "+before+"\n") || !strings.Contains(out, "has-app") {
			t.Fatalf("after the restart (app pid was %s): %q", before, out)
		}
	})

	t.Run("the port-forward drops during a session", func(t *testing.T) {
		cmd := exec.Command(env.Kubectl, "devssh", "-n", ns, "deploy/demo", "--", "sh", "-c", "echo started; sleep 120")
		var stdout, stderr framework.LockedBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitOutput(t, &stdout, "the remote command to start", func(s string) bool { return strings.Contains(s, "started") })
		pod := agentPod(t, ns, "demo")
		if err := env.Client.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			ok := errors.As(err, &ee)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if !ok || ee.ExitCode() != 255 || len(lines) != 1 || !strings.Contains(lines[0], "lost") {
				t.Fatalf("after the pod went away: %v, stderr:\n%s", err, stderr.String())
			}
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("devssh did not notice that the pod went away; stderr: %s", stderr.String())
		}
		env.WaitRollout(t, ns, "demo", 2*time.Minute)
		env.WaitFor(t, "a ready agent in the new pod", 2*time.Minute, func(ctx context.Context) (bool, error) {
			r := devssh(t, ns, nil, "deploy/demo", "--pod-running-timeout", "5s", "--", "true")
			return r.ExitCode == 0, nil
		})
	})

	t.Run("a changed host key in the Secret", func(t *testing.T) {
		_, otherPub, _ := keys.NewEd25519("impostor")
		patch := fmt.Sprintf(`{"stringData":{%q:%q}}`, keys.HostPublicKeyFile, otherPub+"\n")
		env.KubectlT(t, "-n", ns, "patch", "secret", "demo-devagent", "--type=merge", "-p", patch)
		r := devssh(t, ns, nil, "deploy/demo", "--", "true")
		if r.ExitCode != 255 || !strings.Contains(r.Stderr, "does not match") || !strings.Contains(r.Stderr, "re-run kubectl devpatch -n "+ns+" deploy/demo") {
			t.Fatalf("changed host key: exit %d, stderr %q", r.ExitCode, r.Stderr)
		}
	})
}

func TestDevsshDistrolessApp(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-go", "latest"), false)
	// demo-go has no shell: the agent's busybox runs inside the app's files.
	out := devsshOK(t, ns, "deploy/demo", "--", "sh", "-c", `echo "view=$DEVSSH_VIEW uid=$(id -u)"; ls /; test -e /etc/devagent || echo no-agent-keys; test -e /bin/busybox || echo no-busybox-in-app`)
	for _, want := range []string{"view=app", "uid=0", "no-agent-keys", "no-busybox-in-app"} {
		if !strings.Contains(out, want) {
			t.Errorf("distroless shell: %q lacks %q", out, want)
		}
	}
	// --target agent: the agent's own shell, the app's files at $DEVSSH_APP_ROOT.
	out = devsshOK(t, ns, "deploy/demo", "--target", "agent", "--", "sh", "-c", `echo "view=$DEVSSH_VIEW"; test -e /etc/devagent && echo agent-keys; ls "$DEVSSH_APP_ROOT/"`)
	for _, want := range []string{"view=agent", "agent-keys", "proc"} {
		if !strings.Contains(out, want) {
			t.Errorf("--target agent: %q lacks %q", out, want)
		}
	}
}

// TestDevsshSameUserSFTPContainment: a non-root app, so the agent runs as
// the app's user without the right to chroot: shells are the agent's, and
// sftp must resolve every path inside the app's root itself.
func TestDevsshSameUserSFTPContainment(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-python", "nonroot"), true)
	out := devsshOK(t, ns, "deploy/demo", "--", "sh", "-c", `echo "view=$DEVSSH_VIEW uid=$(id -u)"; ls "$DEVSSH_APP_ROOT/app"; ln -sfn /etc "$DEVSSH_APP_ROOT/app/etclink" && echo linked`)
	for _, want := range []string{"view=agent", "uid=1000", "e2e_k8s", "linked"} {
		if !strings.Contains(out, want) {
			t.Errorf("same-user shell: %q lacks %q", out, want)
		}
	}
	o := setupOpenSSH(t, ns)
	get := "get /app/etclink/devagent/ssh_host_ed25519_key " + filepath.Join(o.home, "stolen") + "\n"
	r := o.run(t, []byte(get), "sftp", "-F", o.config, "-o", "BatchMode=yes", "-b", "-", o.alias)
	if r.ExitCode == 0 {
		b, _ := os.ReadFile(filepath.Join(o.home, "stolen"))
		t.Fatalf("sftp fetched the agent's host key through a symlink in the app's tree (%d bytes)", len(b))
	}
	// Inside the app's root the symlink points to the app's /etc (Debian's
	// os-release; the agent's image has none).
	get = "get /app/etclink/os-release " + filepath.Join(o.home, "os-release") + "\n"
	if r := o.run(t, []byte(get), "sftp", "-F", o.config, "-o", "BatchMode=yes", "-b", "-", o.alias); r.ExitCode != 0 {
		t.Fatalf("sftp through the symlink to the app's /etc: %d %s", r.ExitCode, r.Stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(o.home, "os-release")); !bytes.Contains(b, []byte("Debian")) {
		t.Fatalf("os-release through the symlink: %q", b)
	}
	// sftp starts in the app's working directory and writes as the app's user.
	put := "put " + filepath.Join(o.home, "os-release") + " copied\n"
	if r := o.run(t, []byte(put), "sftp", "-F", o.config, "-o", "BatchMode=yes", "-b", "-", o.alias); r.ExitCode != 0 {
		t.Fatalf("sftp put: %d %s", r.ExitCode, r.Stderr)
	}
	if out := devsshOK(t, ns, "deploy/demo", "--", "sh", "-c", `stat -c %u "$DEVSSH_APP_ROOT/app/copied"`); strings.TrimSpace(out) != "1000" {
		t.Fatalf("owner of the file sftp wrote: %q", out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitOutput(t *testing.T, b *framework.LockedBuffer, what string, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok(b.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s; the terminal shows:\n%s", what, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
