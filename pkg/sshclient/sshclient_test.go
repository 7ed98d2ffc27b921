package sshclient

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/patcher"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshserver/wire"
)

func TestParseForward(t *testing.T) {
	cases := map[string]Forward{
		"8080:localhost:80":           {BindAddr: "localhost", BindPort: 8080, Host: "localhost", HostPort: 80},
		"0.0.0.0:9000:127.0.0.1:9000": {BindAddr: "0.0.0.0", BindPort: 9000, Host: "127.0.0.1", HostPort: 9000},
		"[::1]:0:[::1]:22":            {BindAddr: "::1", BindPort: 0, Host: "::1", HostPort: 22},
		"*:80:localhost:8080":         {BindAddr: "", BindPort: 80, Host: "localhost", HostPort: 8080},
	}
	for in, want := range cases {
		got, err := ParseForward(in)
		if err != nil || got != want {
			t.Errorf("ParseForward(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"8080", "a:localhost:80", "80:localhost:0", "1:2:3:4:5", "80::80", "[::1:80:h:1"} {
		if _, err := ParseForward(bad); err == nil {
			t.Errorf("ParseForward(%q) succeeded", bad)
		}
	}
}

func TestQuoteCommandKeepsArgv(t *testing.T) {
	argv := []string{"printf", "%s|", "a b", "it's", "$HOME", "", `"q"`, "x;y", "*"}
	out, err := exec.Command("sh", "-c", QuoteCommand(argv)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := `a b|it's|$HOME||"q"|x;y|*|`; string(out) != want {
		t.Fatalf("sh -c %s printed %q, want %q", QuoteCommand(argv), out, want)
	}
	if got := QuoteCommand([]string{"ls", "-l", "/app"}); got != "ls -l /app" {
		t.Fatalf("plain words quoted: %q", got)
	}
}

func TestOpenSSHBlock(t *testing.T) {
	if a := Alias("deployment", "demo", "dev"); a != "demo.dev.kdev" {
		t.Fatalf("Alias = %q", a)
	}
	if a := Alias("sts", "db", "dev"); a != "sts-db.dev.kdev" {
		t.Fatalf("Alias = %q", a)
	}
	o := OpenSSH{Alias: "demo.dev.kdev", ProxyCommand: []string{"/usr/bin/kubectl-devssh", "--stdio", "--context", "my ctx", "--namespace", "dev", "deploy/demo"},
		IdentityFile: "/home/u/.kube/kubectl-dev/id_ed25519", KnownHostsFile: "/home/u/.ssh/kubectl-dev/demo.dev.kdev.known_hosts"}
	b := o.Block()
	for _, want := range []string{"Host demo.dev.kdev\n", "ProxyCommand /usr/bin/kubectl-devssh --stdio --context 'my ctx' --namespace dev deploy/demo\n",
		"StrictHostKeyChecking yes", "HostKeyAlias demo.dev.kdev", "IdentitiesOnly yes", "UserKnownHostsFile /home/u/.ssh/kubectl-dev/demo.dev.kdev.known_hosts"} {
		if !strings.Contains(b, want) {
			t.Errorf("block lacks %q:\n%s", want, b)
		}
	}
}

func readyPod(name string, created time.Time, ready bool, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "demo"}, Annotations: annotations, CreationTimestamp: metav1.NewTime(created)},
		Spec:       corev1.PodSpec{Volumes: []corev1.Volume{{Name: "devagent-keys", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "demo-devagent"}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", Ready: true, ContainerID: "containerd://" + strings.Repeat("a", 64)},
			{Name: "devagent", Ready: ready},
		}},
	}
}

func TestResolve(t *testing.T) {
	annot := map[string]string{patcher.AnnotationMode: "root", patcher.AnnotationTarget: "app", patcher.AnnotationAgentContainer: "devagent"}
	hk, err := keys.NewHostKey("demo")
	if err != nil {
		t.Fatal(err)
	}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "ns"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "demo"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: annot}},
		},
	}
	now := time.Now()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "demo-devagent", Namespace: "ns"},
		Data: map[string][]byte{keys.HostPublicKeyFile: []byte(hk.PublicLine + "\n")}}
	cs := fake.NewClientset(deploy, secret,
		readyPod("old", now.Add(-time.Hour), true, annot),
		readyPod("new", now, true, annot),
		readyPod("newest-not-ready", now.Add(time.Minute), false, annot))
	tg, err := Resolve(context.Background(), cs, deploy, ResolveOptions{Ref: "deploy/demo", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if tg.Pod.Name != "new" || tg.Container != "app" || tg.ContainerID != strings.Repeat("a", 64) || tg.SecretName != "demo-devagent" || !strings.HasPrefix(hk.PublicLine, tg.HostKey.Type()) {
		t.Fatalf("Resolve = pod %s container %s id %s secret %s", tg.Pod.Name, tg.Container, tg.ContainerID, tg.SecretName)
	}
	env := strings.Join(tg.Env("agent"), " ")
	if !strings.Contains(env, wire.EnvContainerID+"="+strings.Repeat("a", 64)) || !strings.Contains(env, wire.EnvTarget+"=agent") {
		t.Fatalf("Env = %s", env)
	}

	// An unpatched workload: one clear error, no waiting.
	plain := deploy.DeepCopy()
	plain.Spec.Template.Annotations = nil
	start := time.Now()
	_, err = Resolve(context.Background(), cs, plain, ResolveOptions{Ref: "deploy/demo", Timeout: 10 * time.Second})
	var np *NotPatchedError
	if !errors.As(err, &np) || !strings.Contains(err.Error(), `kubectl devpatch deploy/demo`) || time.Since(start) > 5*time.Second {
		t.Fatalf("unpatched: %v", err)
	}
	// -c names a container the pod does not have.
	if _, err := Resolve(context.Background(), cs, deploy, ResolveOptions{Ref: "deploy/demo", Container: "nope", Timeout: time.Second}); err == nil || !strings.Contains(err.Error(), `no container "nope"`) {
		t.Fatalf("-c nope: %v", err)
	}
}
