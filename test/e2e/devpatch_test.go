package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dev/kubectl-dev/test/e2e/framework"
)

// devpatch runs "kubectl devpatch" in ns with the agent image under test.
func devpatch(t *testing.T, ns string, args ...string) framework.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	full := append([]string{"devpatch", "-n", ns, "--image", env.AgentImage(), "--timeout", "4m"}, args...)
	r, err := env.Run(ctx, nil, env.Kubectl, full...)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(full, " "), err)
	}
	t.Logf("kubectl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(full, " "), r.ExitCode, r.Stdout, r.Stderr)
	return r
}

// devpatchOK runs devpatch and fails the test when it does not exit 0.
func devpatchOK(t *testing.T, ns string, args ...string) framework.Result {
	t.Helper()
	r := devpatch(t, ns, args...)
	if r.ExitCode != 0 {
		t.Fatalf("kubectl devpatch %s exited %d: %s", strings.Join(args, " "), r.ExitCode, r.Stderr)
	}
	return r
}

func getDeployment(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// rawSpec is the deployment's spec as the API server returns it.
func rawSpec(t *testing.T, ns, name string) string {
	t.Helper()
	return env.KubectlT(t, "-n", ns, "get", "deployment", name, "-o", "jsonpath={.spec}")
}

func replicaSets(t *testing.T, ns string) []string {
	t.Helper()
	rss, err := env.Client.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rs := range rss.Items {
		names = append(names, rs.Name)
	}
	sort.Strings(names)
	return names
}

// agentPod is a running pod of deployment name whose agent is ready.
func agentPod(t *testing.T, ns, name string) corev1.Pod {
	t.Helper()
	for _, p := range env.RunningPods(t, ns, name) {
		for _, st := range p.Status.ContainerStatuses {
			if st.Name == "devagent" && st.Ready {
				return p
			}
		}
	}
	t.Fatalf("no running pod of deployment/%s has a ready devagent container", name)
	return corev1.Pod{}
}

// inAgent runs a shell command in the agent container of pod.
func inAgent(t *testing.T, ns, pod, script string) string {
	t.Helper()
	return env.KubectlT(t, "-n", ns, "exec", pod, "-c", "devagent", "--", "sh", "-c", script)
}

// appPID is the shell snippet that finds the demo app's process.
const appPID = `pid=$(ps -o pid,args | awk '/[e]2e_k8s[.]demo/ {print $1; exit}'); test -n "$pid" || { echo "no app process" >&2; exit 3; }`

func TestDevpatchDeployment(t *testing.T) {
	ns := env.Namespace(t)
	env.CreateDeployment(t, ns, env.DemoDeployment("demo", env.Image("demo-python", "latest")))
	before := rawSpec(t, ns, "demo")
	gen0 := getDeployment(t, ns, "demo").Generation

	// A server-side dry run prints the object and changes nothing.
	r := devpatchOK(t, ns, "deploy/demo", "--dry-run=server", "-o", "yaml")
	if !strings.Contains(r.Stdout, "kind: Deployment") || !strings.Contains(r.Stdout, "shareProcessNamespace: true") {
		t.Fatalf("--dry-run=server -o yaml printed:\n%s", r.Stdout)
	}
	if got := getDeployment(t, ns, "demo").Generation; got != gen0 || rawSpec(t, ns, "demo") != before {
		t.Fatal("--dry-run=server changed the deployment")
	}
	if _, err := env.Client.CoreV1().Secrets(ns).Get(context.Background(), "demo-devagent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("--dry-run=server left the secret (err %v)", err)
	}

	r = devpatchOK(t, ns, "deploy/demo")
	if !strings.Contains(r.Stdout, "deployment.apps/demo patched") || !strings.Contains(r.Stdout, "kubectl devssh") {
		t.Fatalf("stdout:\n%s", r.Stdout)
	}
	d := getDeployment(t, ns, "demo")
	if !ptr.Deref(d.Spec.Template.Spec.ShareProcessNamespace, false) || d.Spec.Template.Annotations["devpatch.kubectl-dev.io/mode"] != "root" {
		t.Fatalf("patched template: shareProcessNamespace %v, annotations %v", d.Spec.Template.Spec.ShareProcessNamespace, d.Spec.Template.Annotations)
	}
	pod := agentPod(t, ns, "demo")
	if !ptr.Deref(pod.Spec.ShareProcessNamespace, false) {
		t.Fatal("the new pod does not share its process namespace")
	}
	// The agent sees the app's process, and reads and writes its files
	// through /proc/<pid>/root.
	if out := inAgent(t, ns, pod.Name, "ps -o pid,user,args"); !strings.Contains(out, "e2e_k8s.demo") {
		t.Fatalf("the agent does not see the app's process:\n%s", out)
	}
	if out := inAgent(t, ns, pod.Name, appPID+`; ls /proc/$pid/root/app/e2e_k8s`); !strings.Contains(out, "demo.py") {
		t.Fatalf("ls through /proc/<pid>/root:\n%s", out)
	}
	inAgent(t, ns, pod.Name, appPID+`; echo written-by-agent > /proc/$pid/root/tmp/devpatch-e2e`)
	if out := env.KubectlT(t, "-n", ns, "exec", pod.Name, "-c", "app", "--", "cat", "/tmp/devpatch-e2e"); strings.TrimSpace(out) != "written-by-agent" {
		t.Fatalf("the app does not see the agent's write: %q", out)
	}

	// A re-run applies the same object: no new generation, no new ReplicaSet.
	gen, rss := getDeployment(t, ns, "demo").Generation, replicaSets(t, ns)
	r = devpatchOK(t, ns, "deploy/demo")
	if !strings.Contains(r.Stdout, "deployment.apps/demo unchanged") {
		t.Errorf("re-run stdout:\n%s", r.Stdout)
	}
	if got := getDeployment(t, ns, "demo").Generation; got != gen {
		t.Fatalf("re-run changed the generation from %d to %d", gen, got)
	}
	if got := replicaSets(t, ns); strings.Join(got, ",") != strings.Join(rss, ",") {
		t.Fatalf("re-run changed the ReplicaSets from %v to %v", rss, got)
	}

	// --list shows it.
	if r := devpatchOK(t, ns, "--list"); !strings.Contains(r.Stdout, "deployment.apps/demo") || !strings.Contains(r.Stdout, "root") {
		t.Errorf("--list:\n%s", r.Stdout)
	}

	// --remove restores the spec exactly.
	r = devpatchOK(t, ns, "--remove", "deploy/demo")
	if !strings.Contains(r.Stdout, `removed container "devagent"`) || !strings.Contains(r.Stdout, "secret/demo-devagent deleted") {
		t.Fatalf("--remove stdout:\n%s", r.Stdout)
	}
	if after := rawSpec(t, ns, "demo"); after != before {
		t.Fatalf("after --remove the spec is\n%s\nwant (before the patch)\n%s", after, before)
	}
	if _, err := env.Client.CoreV1().Secrets(ns).Get(context.Background(), "demo-devagent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the secret is still there (err %v)", err)
	}
	env.WaitRollout(t, ns, "demo", 3*time.Minute)
}

// applyYAML runs kubectl apply --server-side with a field manager of the user's.
func applyYAML(t *testing.T, ns, manager, yaml string) framework.Result {
	t.Helper()
	r, err := env.Run(context.Background(), []byte(yaml), env.Kubectl, "-n", ns, "apply", "--server-side", "--field-manager", manager, "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func shareProcessNamespaceYAML(name string, value bool) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
spec:
  template:
    spec:
      shareProcessNamespace: %v
`, name, value)
}

func TestDevpatchCoOwnedFieldStaysAndConflicts(t *testing.T) {
	ns := env.Namespace(t)
	env.CreateDeployment(t, ns, env.DemoDeployment("demo", env.Image("demo-go", "latest")))
	if r := applyYAML(t, ns, "user-manifest", shareProcessNamespaceYAML("demo", true)); r.ExitCode != 0 {
		t.Fatalf("user apply: %s", r.Stderr)
	}
	env.WaitRollout(t, ns, "demo", 3*time.Minute)
	devpatchOK(t, ns, "deploy/demo")
	r := devpatchOK(t, ns, "--remove", "deploy/demo")
	if !strings.Contains(r.Stdout, `kept spec.template.spec.shareProcessNamespace (also set by field manager "user-manifest")`) {
		t.Fatalf("--remove does not say the co-owned field stayed:\n%s", r.Stdout)
	}
	d := getDeployment(t, ns, "demo")
	if !ptr.Deref(d.Spec.Template.Spec.ShareProcessNamespace, false) || len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("after --remove: shareProcessNamespace %v, containers %d", d.Spec.Template.Spec.ShareProcessNamespace, len(d.Spec.Template.Spec.Containers))
	}

	// The user's manifest says shareProcessNamespace: false: a conflict,
	// explained, with --force-conflicts as the remedy.
	if r := applyYAML(t, ns, "user-manifest", shareProcessNamespaceYAML("demo", false)); r.ExitCode != 0 {
		t.Fatalf("user apply: %s", r.Stderr)
	}
	gen := getDeployment(t, ns, "demo").Generation
	r = devpatch(t, ns, "deploy/demo", "--wait=false")
	if r.ExitCode == 0 || !strings.Contains(r.Stderr, ".spec.template.spec.shareProcessNamespace") || !strings.Contains(r.Stderr, `"user-manifest"`) || !strings.Contains(r.Stderr, "--force-conflicts") {
		t.Fatalf("conflict: exit %d, stderr %s", r.ExitCode, r.Stderr)
	}
	if getDeployment(t, ns, "demo").Generation != gen {
		t.Fatal("a conflicting devpatch changed the deployment")
	}
}

func TestDevpatchNonRootSameUser(t *testing.T) {
	ns := env.Namespace(t)
	d := env.DemoDeployment("demo", env.Image("demo-python", "nonroot"))
	d.Spec.Template.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000)}
	env.CreateDeployment(t, ns, d)
	devpatchOK(t, ns, "deploy/demo")
	if mode := getDeployment(t, ns, "demo").Spec.Template.Annotations["devpatch.kubectl-dev.io/mode"]; mode != "same-user" {
		t.Fatalf("mode %q, want same-user", mode)
	}
	pod := agentPod(t, ns, "demo")
	if out := strings.TrimSpace(inAgent(t, ns, pod.Name, "id -u; id -g")); out != "1000\n1000" {
		t.Fatalf("agent ids %q, want 1000 1000", out)
	}
	if out := inAgent(t, ns, pod.Name, appPID+`; ls /proc/$pid/root/app/e2e_k8s`); !strings.Contains(out, "demo.py") {
		t.Fatalf("ls through /proc/<pid>/root in same-user mode:\n%s", out)
	}
	inAgent(t, ns, pod.Name, appPID+`; echo same-user > /proc/$pid/root/app/devpatch-e2e`)
	if out := env.KubectlT(t, "-n", ns, "exec", pod.Name, "-c", "app", "--", "cat", "/app/devpatch-e2e"); strings.TrimSpace(out) != "same-user" {
		t.Fatalf("the app does not see the agent's write: %q", out)
	}
}

func TestDevpatchPodSecurityRefusal(t *testing.T) {
	ns := env.Namespace(t)
	n, err := env.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
	if _, err := env.Client.CoreV1().Namespaces().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Pod Security enforces on pods, not on the Deployment: no rollout needed.
	if _, err := env.Client.AppsV1().Deployments(ns).Create(context.Background(), env.DemoDeployment("demo", env.Image("demo-go", "latest")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gen := getDeployment(t, ns, "demo").Generation
	r := devpatch(t, ns, "deploy/demo", "--mode", "ptrace")
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	if r.ExitCode == 0 || !strings.Contains(r.Stderr, `Pod Security level "restricted"`) || !strings.Contains(r.Stderr, "--mode same-user") || len(lines) != 1 {
		t.Fatalf("ptrace in a restricted namespace: exit %d, stderr:\n%s", r.ExitCode, r.Stderr)
	}
	if getDeployment(t, ns, "demo").Generation != gen {
		t.Fatal("a refused devpatch changed the deployment")
	}
}

func TestDevpatchBarePod(t *testing.T) {
	ns := env.Namespace(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "solo", Labels: map[string]string{framework.AppLabel: "solo"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](2),
			Containers:                    []corev1.Container{{Name: "app", Image: env.Image("demo-python", "latest")}},
		},
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env.WaitFor(t, "pod/solo running", 3*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "solo", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})
	r := devpatchOK(t, ns, "pod/solo")
	if !strings.Contains(r.Stdout, "ephemeral agent added") || !strings.Contains(r.Stderr, "cannot be removed") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
	// The ephemeral agent is in the app's process namespace: the app is PID 1.
	out := env.KubectlT(t, "-n", ns, "exec", "solo", "-c", "devagent", "--", "ls", "/proc/1/root/app/e2e_k8s")
	if !strings.Contains(out, "demo.py") {
		t.Fatalf("ls /proc/1/root/app from the ephemeral agent:\n%s", out)
	}
	r = devpatchOK(t, ns, "pod/solo")
	if !strings.Contains(r.Stdout, "unchanged") {
		t.Fatalf("second run stdout:\n%s", r.Stdout)
	}
	p, err := env.Client.CoreV1().Pods(ns).Get(context.Background(), "solo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Spec.EphemeralContainers) != 1 {
		t.Fatalf("%d ephemeral containers after two runs, want 1", len(p.Spec.EphemeralContainers))
	}
}

func TestDevpatchBadInput(t *testing.T) {
	ns := env.Namespace(t)
	if _, err := env.Client.AppsV1().Deployments(ns).Create(context.Background(), env.DemoDeployment("demo", env.Image("demo-go", "latest")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy/nope"}, fmt.Sprintf(`error: deployments.apps "nope" not found in namespace %q`, ns)},
		{[]string{"frobs/x"}, `the server doesn't have a resource type "frobs"`},
		{[]string{"svc/x"}, "works on deployments, statefulsets, daemonsets, replicasets, cronjobs, jobs and pods, not on service"},
		{[]string{"deploy/demo", "-c", "nope"}, `container "nope" not found in deployment.apps/demo; its containers are: app`},
		{[]string{"deploy/demo", "--field-manager", "kubectl-mine"}, "Flux"},
	} {
		r := devpatch(t, ns, c.args...)
		if r.ExitCode == 0 || !strings.Contains(r.Stderr, c.want) || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
			t.Errorf("devpatch %s: exit %d, stderr %q; want one line containing %q", strings.Join(c.args, " "), r.ExitCode, r.Stderr, c.want)
		}
	}
}

func TestDevpatchUnpullableImage(t *testing.T) {
	ns := env.Namespace(t)
	env.CreateDeployment(t, ns, env.DemoDeployment("demo", env.Image("demo-go", "latest")))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bad := strings.TrimSuffix(env.AgentImage(), ":"+env.Version) + ":does-not-exist"
	r, err := env.Run(ctx, nil, env.Kubectl, "devpatch", "-n", ns, "--image", bad, "--timeout", "3m", "deploy/demo")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stderr:\n%s", r.Stderr)
	if r.ExitCode == 0 || !strings.Contains(r.Stderr, `container "devagent"`) ||
		!(strings.Contains(r.Stderr, "ErrImagePull") || strings.Contains(r.Stderr, "ImagePullBackOff")) || strings.Contains(r.Stderr, "timed out") {
		t.Fatalf("an unpullable agent image: exit %d, stderr:\n%s", r.ExitCode, r.Stderr)
	}
}

// rawWorkloadSpec is the spec of any workload as the API server returns it.
func rawWorkloadSpec(t *testing.T, ns, ref string) string {
	t.Helper()
	return env.KubectlT(t, "-n", ns, "get", ref, "-o", "jsonpath={.spec}")
}

func generation(t *testing.T, ns, ref string) string {
	t.Helper()
	return env.KubectlT(t, "-n", ns, "get", ref, "-o", "jsonpath={.metadata.generation}")
}

func TestDevpatchStatefulSetAndDaemonSet(t *testing.T) {
	ns := env.Namespace(t)
	d := env.DemoDeployment("demo", env.Image("demo-go", "latest"))
	ctx := context.Background()
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), ServiceName: "db", Selector: d.Spec.Selector, Template: d.Spec.Template},
	}
	if _, err := env.Client.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dsLabels := map[string]string{"app": "node-agent", framework.AppLabel: "node-agent"}
	tpl := *d.Spec.Template.DeepCopy()
	tpl.Labels = dsLabels
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "node-agent"},
		Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: dsLabels}, Template: tpl},
	}
	if _, err := env.Client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"sts/db", "ds/node-agent"} {
		before := rawWorkloadSpec(t, ns, ref)
		devpatchOK(t, ns, ref)
		gen := generation(t, ns, ref)
		if r := devpatchOK(t, ns, ref); !strings.Contains(r.Stdout, "unchanged") {
			t.Errorf("%s re-run: %s", ref, r.Stdout)
		}
		if got := generation(t, ns, ref); got != gen {
			t.Fatalf("%s: re-run changed the generation from %s to %s", ref, gen, got)
		}
		devpatchOK(t, ns, "--remove", ref)
		if after := rawWorkloadSpec(t, ns, ref); after != before {
			t.Fatalf("%s after --remove:\n%s\nwant\n%s", ref, after, before)
		}
	}
}
