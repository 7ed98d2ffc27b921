package patcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
)

const ns = "test"

func demoDeployment() *appsv1.Deployment {
	labels := map[string]string{"app": "demo"}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: ns, UID: "uid-demo"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000)},
					Containers:      []corev1.Container{{Name: "app", Image: "demo:latest"}},
				},
			},
		},
	}
}

func namespace(level string) *corev1.Namespace {
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	if level != "" {
		n.Labels = map[string]string{PodSecurityEnforceLabel: level}
	}
	return n
}

type harness struct {
	client *fake.Clientset
	p      *Patcher
	log    *bytes.Buffer
}

func newHarness(t *testing.T, objs ...any) *harness {
	t.Helper()
	client := fake.NewClientset()
	ctx := context.Background()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *appsv1.Deployment:
			_, err = client.AppsV1().Deployments(o.Namespace).Create(ctx, o, metav1.CreateOptions{FieldManager: "kubectl-create"})
		case *corev1.Namespace:
			_, err = client.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Pod:
			_, err = client.CoreV1().Pods(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	log := &bytes.Buffer{}
	return &harness{client: client, p: &Patcher{Client: client, Status: log, PollInterval: 10 * time.Millisecond}, log: log}
}

func userKey(t *testing.T, comment string) string {
	t.Helper()
	_, pub, err := keys.NewEd25519(comment)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func (h *harness) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	d, err := h.client.AppsV1().Deployments(ns).Get(context.Background(), "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func specJSON(t *testing.T, d *appsv1.Deployment) string {
	t.Helper()
	b, err := json.Marshal(d.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func cfgFor(key string) Config {
	return Config{Namespace: ns, Kind: KindDeployment, Name: "demo", Image: "reg/devagent:v1.0.0", AuthorizedKeys: []string{key}}
}

func TestPatchThenRemoveRestoresTheSpec(t *testing.T) {
	h := newHarness(t, namespace(""), demoDeployment())
	ctx := context.Background()
	before := specJSON(t, h.deployment(t))

	res, err := h.p.Patch(ctx, cfgFor(userKey(t, "alice")))
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != ModeSameUser || res.Target != "app" || res.Secret != "created" {
		t.Fatalf("result %+v", res)
	}
	d := h.deployment(t)
	spec := d.Spec.Template.Spec
	if !ptr.Deref(spec.ShareProcessNamespace, false) || len(spec.Containers) != 2 || spec.Containers[1].Name != "devagent" || len(spec.Volumes) != 1 {
		t.Fatalf("patched template: %+v", spec)
	}
	if sc := spec.Containers[1].SecurityContext; *sc.RunAsUser != 1000 || *sc.RunAsGroup != 1000 {
		t.Fatalf("agent security context %+v", sc)
	}
	if d.Spec.Template.Annotations[wire.AnnotationMode] != "same-user" {
		t.Fatalf("annotations %v", d.Spec.Template.Annotations)
	}
	sec, err := h.client.CoreV1().Secrets(ns).Get(ctx, "demo-devagent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.CheckHostKey(sec.Data[keys.HostKeyFile]); err != nil {
		t.Fatalf("secret host key: %v", err)
	}
	if len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != "uid-demo" || sec.OwnerReferences[0].Kind != "Deployment" {
		t.Fatalf("secret owner %+v", sec.OwnerReferences)
	}

	// A re-run applies the same object: nothing changes.
	patched := specJSON(t, d)
	if _, err := h.p.Patch(ctx, cfgFor(userKey(t, "alice"))); err != nil {
		t.Fatal(err)
	}
	if got := specJSON(t, h.deployment(t)); got != patched {
		t.Fatalf("a re-run changed the spec:\n%s\n%s", patched, got)
	}

	rr, err := h.p.Remove(ctx, cfgFor(""))
	if err != nil {
		t.Fatal(err)
	}
	if got := specJSON(t, h.deployment(t)); got != before {
		t.Fatalf("after --remove the spec is\n%s\nwant\n%s", got, before)
	}
	if len(rr.Kept) != 0 || rr.Secret != "deleted" || !strings.Contains(strings.Join(rr.Removed, ","), `container "devagent"`) {
		t.Fatalf("remove result %+v", rr)
	}
	if _, err := h.client.CoreV1().Secrets(ns).Get(ctx, "demo-devagent", metav1.GetOptions{}); err == nil {
		t.Fatal("the secret is still there")
	}
	// Removing again: nothing owned.
	rr, err = h.p.Remove(ctx, cfgFor(""))
	if err != nil || len(rr.Removed)+len(rr.Kept) != 0 {
		t.Fatalf("second remove: %+v %v", rr, err)
	}
}

func TestSecondDeveloperKeepsFirstKey(t *testing.T) {
	h := newHarness(t, namespace(""), demoDeployment())
	ctx := context.Background()
	alice, bob := userKey(t, "alice"), userKey(t, "bob")
	if _, err := h.p.Patch(ctx, cfgFor(alice)); err != nil {
		t.Fatal(err)
	}
	sec1, _ := h.client.CoreV1().Secrets(ns).Get(ctx, "demo-devagent", metav1.GetOptions{})
	res, err := h.p.Patch(ctx, cfgFor(bob))
	if err != nil {
		t.Fatal(err)
	}
	if res.Secret != "updated" {
		t.Fatalf("secret %s, want updated", res.Secret)
	}
	sec2, _ := h.client.CoreV1().Secrets(ns).Get(ctx, "demo-devagent", metav1.GetOptions{})
	ak, err := keys.ParseAuthorizedKeys(sec2.Data[keys.AuthorizedKeysFile])
	if err != nil || len(ak) != 2 || ak[0].Comment != "alice" || ak[1].Comment != "bob" {
		t.Fatalf("authorized_keys = %q", sec2.Data[keys.AuthorizedKeysFile])
	}
	if !bytes.Equal(sec1.Data[keys.HostKeyFile], sec2.Data[keys.HostKeyFile]) {
		t.Fatal("the host key changed")
	}
}

func TestCoOwnedShareProcessNamespaceStays(t *testing.T) {
	h := newHarness(t, namespace(""), demoDeployment())
	ctx := context.Background()
	// The user's own server-side apply also sets shareProcessNamespace.
	user := appsv1ac.Deployment("demo", ns).WithSpec(appsv1ac.DeploymentSpec().WithTemplate(
		corev1ac.PodTemplateSpec().WithSpec(corev1ac.PodSpec().WithShareProcessNamespace(true))))
	if _, err := h.client.AppsV1().Deployments(ns).Apply(ctx, user, metav1.ApplyOptions{FieldManager: "user-manifest"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.p.Patch(ctx, cfgFor(userKey(t, "alice"))); err != nil {
		t.Fatal(err)
	}
	rr, err := h.p.Remove(ctx, cfgFor(""))
	if err != nil {
		t.Fatal(err)
	}
	d := h.deployment(t)
	if !ptr.Deref(d.Spec.Template.Spec.ShareProcessNamespace, false) {
		t.Fatal("the user's shareProcessNamespace was removed")
	}
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("the agent is still there: %+v", d.Spec.Template.Spec.Containers)
	}
	if len(rr.Kept) != 1 || !strings.Contains(rr.Kept[0], "spec.template.spec.shareProcessNamespace") || !strings.Contains(rr.Kept[0], `"user-manifest"`) {
		t.Fatalf("kept = %q", rr.Kept)
	}
}

func TestConflictNamesFieldAndManager(t *testing.T) {
	h := newHarness(t, namespace(""), demoDeployment())
	ctx := context.Background()
	user := appsv1ac.Deployment("demo", ns).WithSpec(appsv1ac.DeploymentSpec().WithTemplate(
		corev1ac.PodTemplateSpec().WithSpec(corev1ac.PodSpec().WithShareProcessNamespace(false))))
	if _, err := h.client.AppsV1().Deployments(ns).Apply(ctx, user, metav1.ApplyOptions{FieldManager: "user-manifest"}); err != nil {
		t.Fatal(err)
	}
	_, err := h.p.Patch(ctx, cfgFor(userKey(t, "alice")))
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a ConflictError", err)
	}
	msg := err.Error()
	for _, want := range []string{"deployment.apps/demo", ".spec.template.spec.shareProcessNamespace", `"user-manifest"`, "--force-conflicts"} {
		if !strings.Contains(msg, want) {
			t.Errorf("conflict message %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("conflict message is not one line: %q", msg)
	}
	// Nothing was applied, and the Secret created for it is gone again.
	if d := h.deployment(t); len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("a conflicting apply changed the containers")
	}
	if _, err := h.client.CoreV1().Secrets(ns).Get(ctx, "demo-devagent", metav1.GetOptions{}); err == nil {
		t.Fatal("the secret of a failed patch is left")
	}
	cfg := cfgFor(userKey(t, "alice"))
	cfg.ForceConflicts = true
	if _, err := h.p.Patch(ctx, cfg); err != nil {
		t.Fatalf("--force-conflicts: %v", err)
	}
	if !ptr.Deref(h.deployment(t).Spec.Template.Spec.ShareProcessNamespace, false) {
		t.Fatal("--force-conflicts did not take shareProcessNamespace over")
	}
}

func TestPatchRefusals(t *testing.T) {
	ctx := context.Background()
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBQ5d7IzN6kk8DkC4R1m9n3RkJYoPf3F3eXQh+lG2X3M x"

	h := newHarness(t, namespace(LevelRestricted), demoDeployment())
	cfg := cfgFor(key)
	cfg.Mode = ModePtrace
	if _, err := h.p.Patch(ctx, cfg); err == nil || !strings.Contains(err.Error(), `Pod Security level "restricted"`) {
		t.Fatalf("ptrace in a restricted namespace: %v", err)
	}
	if _, err := h.p.Patch(ctx, cfgFor(key)); err != nil { // same-user passes restricted
		t.Fatalf("same-user in a restricted namespace: %v", err)
	}

	cfg = cfgFor(key)
	cfg.Name = "missing"
	if _, err := h.p.Patch(ctx, cfg); err == nil || err.Error() != `deployments.apps "missing" not found in namespace "test"` {
		t.Fatalf("missing deployment: %v", err)
	}
	cfg = cfgFor(key)
	cfg.TargetContainer = "nope"
	if _, err := h.p.Patch(ctx, cfg); err == nil || !strings.Contains(err.Error(), "its containers are: app, devagent") {
		t.Fatalf("unknown container: %v", err)
	}
	cfg = cfgFor(key)
	cfg.FieldManager = "kubectl-devpatch"
	if _, err := h.p.Patch(ctx, cfg); err == nil || !strings.Contains(err.Error(), "Flux") {
		t.Fatalf("kubectl field manager: %v", err)
	}
	// A container of the user's named like the agent is not taken over.
	cfg = cfgFor(key)
	cfg.FieldManager = "someone-else"
	if _, err := h.p.Patch(ctx, cfg); err == nil || !strings.Contains(err.Error(), "did not add") {
		t.Fatalf("foreign devagent container: %v", err)
	}
}

// The fake clientset ignores DryRun, so only the client dry run (which sends
// nothing) is checked here; the e2e tests check --dry-run=server.
func TestClientDryRunChangesNothing(t *testing.T) {
	h := newHarness(t, namespace(""), demoDeployment())
	ctx := context.Background()
	before := specJSON(t, h.deployment(t))
	cfg := cfgFor(userKey(t, "alice"))
	cfg.DryRun = DryRunClient
	res, err := h.p.Patch(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if after := specJSON(t, h.deployment(t)); after != before {
		t.Fatal("a client dry run changed the deployment")
	}
	if _, err := h.client.CoreV1().Secrets(ns).Get(ctx, "demo-devagent", metav1.GetOptions{}); err == nil {
		t.Fatal("a client dry run created the secret")
	}
	if res.Applied["kind"] != "Deployment" || res.Secret != "" {
		t.Fatalf("result %+v", res)
	}
}

func TestBarePodGetsEphemeralAgent(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: ns, UID: "uid-solo"},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000)},
			Containers:      []corev1.Container{{Name: "app", Image: "demo"}},
		},
	}
	h := newHarness(t, namespace(""), pod)
	ctx := context.Background()
	cfg := cfgFor(userKey(t, "alice"))
	cfg.Kind, cfg.Name = KindPod, "solo"
	res, err := h.p.Patch(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Ephemeral || res.Reused || res.Secret != "created" {
		t.Fatalf("result %+v", res)
	}
	live, _ := h.client.CoreV1().Pods(ns).Get(ctx, "solo", metav1.GetOptions{})
	if len(live.Spec.EphemeralContainers) != 1 || live.Spec.EphemeralContainers[0].TargetContainerName != "app" {
		t.Fatalf("ephemeral containers %+v", live.Spec.EphemeralContainers)
	}
	if live.Annotations[wire.AnnotationAgentContainer] != "devagent" {
		t.Fatalf("pod annotations %v", live.Annotations)
	}
	res, err = h.p.Patch(ctx, cfg)
	if err != nil || !res.Reused {
		t.Fatalf("second run: %+v %v", res, err)
	}
	live, _ = h.client.CoreV1().Pods(ns).Get(ctx, "solo", metav1.GetOptions{})
	if len(live.Spec.EphemeralContainers) != 1 {
		t.Fatalf("second run added another: %+v", live.Spec.EphemeralContainers)
	}
	entries, _ := h.p.List(ctx, ns)
	if len(entries) != 1 || entries[0].Kind != KindPod {
		t.Fatalf("list = %+v", entries)
	}
	if _, err := h.p.Remove(ctx, cfg); err == nil || !strings.Contains(err.Error(), "ephemeral containers cannot be removed") {
		t.Fatalf("remove on a pod: %v", err)
	}
}
