package devpatch

import (
	"context"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/restmapper"
	clienttesting "k8s.io/client-go/testing"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dev/kubectl-dev/pkg/patcher"
)

// testMapper knows the kinds and short names a real cluster reports.
func testMapper(t *testing.T) meta.RESTMapper {
	t.Helper()
	resources := []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "pods", Kind: "Pod", Namespaced: true, ShortNames: []string{"po"}, Verbs: []string{"get"}},
			{Name: "services", Kind: "Service", Namespaced: true, ShortNames: []string{"svc"}, Verbs: []string{"get"}},
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
			{Name: "deployments", Kind: "Deployment", Namespaced: true, ShortNames: []string{"deploy"}, Verbs: []string{"get"}},
			{Name: "statefulsets", Kind: "StatefulSet", Namespaced: true, ShortNames: []string{"sts"}, Verbs: []string{"get"}},
			{Name: "daemonsets", Kind: "DaemonSet", Namespaced: true, ShortNames: []string{"ds"}, Verbs: []string{"get"}},
			{Name: "replicasets", Kind: "ReplicaSet", Namespaced: true, ShortNames: []string{"rs"}, Verbs: []string{"get"}},
		}},
	}
	disc := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: resources}}
	groups, err := restmapper.GetAPIGroupResources(disc)
	if err != nil {
		t.Fatal(err)
	}
	return restmapper.NewShortcutExpander(restmapper.NewDiscoveryRESTMapper(groups), disc, nil)
}

func TestResolveKind(t *testing.T) {
	m := testMapper(t)
	cases := map[string]patcher.Kind{
		"deploy": patcher.KindDeployment, "deployment": patcher.KindDeployment, "deployments.apps": patcher.KindDeployment,
		"Deployment": patcher.KindDeployment, "sts": patcher.KindStatefulSet, "ds": patcher.KindDaemonSet,
		"rs": patcher.KindReplicaSet, "po": patcher.KindPod, "pod": patcher.KindPod, "pods": patcher.KindPod,
	}
	for typ, want := range cases {
		got, err := ResolveKind(m, typ)
		if err != nil || got != want {
			t.Errorf("ResolveKind(%q) = %q, %v; want %q", typ, got, err, want)
		}
	}
	if _, err := ResolveKind(m, "frobs"); err == nil || err.Error() != `the server doesn't have a resource type "frobs"` {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := ResolveKind(m, "svc"); err == nil || !strings.Contains(err.Error(), "not on service") {
		t.Errorf("unsupported kind: %v", err)
	}
}

func TestSplitTarget(t *testing.T) {
	for _, c := range []struct {
		args      []string
		typ, name string
		ok        bool
	}{
		{[]string{"deploy/demo"}, "deploy", "demo", true},
		{[]string{"deploy", "demo"}, "deploy", "demo", true},
		{[]string{"demo"}, "", "", false},
		{[]string{"deploy/"}, "", "", false},
		{nil, "", "", false},
		{[]string{"a/b", "c"}, "", "", false},
	} {
		typ, name, err := splitTarget(c.args)
		if (err == nil) != c.ok || typ != c.typ || name != c.name {
			t.Errorf("splitTarget(%q) = %q %q %v", c.args, typ, name, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(o *PatchOptions)
		want string
	}{
		{"ok", func(o *PatchOptions) {}, ""},
		{"kubectl manager", func(o *PatchOptions) { o.FieldManager = "kubectl-x" }, `starts with "kubectl"`},
		{"bad mode", func(o *PatchOptions) { o.Mode = "sudo" }, "--mode must be one of"},
		{"-A without --list", func(o *PatchOptions) { o.AllNamespaces = true }, "only works with --list"},
		{"remove a pod", func(o *PatchOptions) { o.Remove, o.Kind = true, patcher.KindPod }, "ephemeral containers cannot be removed"},
		{"timeout", func(o *PatchOptions) { o.Timeout = 0 }, "--timeout must be positive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := NewPatchOptions(genericiooptions.NewTestIOStreamsDiscard())
			o.Kind, o.Name = patcher.KindDeployment, "demo"
			c.set(o)
			err := o.Validate()
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Validate = %v, want %q", err, c.want)
			}
		})
	}
}

// The command against the fake clientset: flags, key creation beside the
// kubeconfig, output on stdout, status on stderr.
func TestCommandPatchesListsAndRemoves(t *testing.T) {
	cf := genericclioptions.NewConfigFlags(false)
	cf.Namespace = ptr.To("test")
	kubeconfig := t.TempDir() + "/config"
	os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: https://127.0.0.1:1}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n"), 0o600)
	cf.KubeConfig = ptr.To(kubeconfig)
	tf := cmdutil.NewFactory(cf)
	client := fake.NewClientset()
	ctx := context.Background()
	labels := map[string]string{"app": "demo"}
	client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "test"}}, metav1.CreateOptions{})
	client.AppsV1().Deployments("test").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "test"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](0), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "demo"}}}}},
	}, metav1.CreateOptions{})
	keyDir := t.TempDir()

	run := func(args ...string) (string, string, error) {
		streams, _, out, errOut := genericiooptions.NewTestIOStreams()
		o := NewPatchOptions(streams)
		o.Client, o.Mapper, o.KeyDir = client, testMapper(t), keyDir
		o.Getenv = func(k string) string {
			if k == patcher.ImageEnv {
				return "reg/devagent:v9"
			}
			return ""
		}
		cmd := newCmd(tf, o)
		cmd.SetArgs(args)
		cmd.SetOut(out)
		cmd.SetErr(errOut)
		cmd.SilenceErrors, cmd.SilenceUsage = true, true
		err := cmd.ExecuteContext(ctx)
		return out.String(), errOut.String(), err
	}

	out, errOut, err := run("deploy/demo")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "deployment.apps/demo patched") || !strings.Contains(out, "kubectl devssh -n test deploy/demo") {
		t.Errorf("stdout:\n%s", out)
	}
	for _, want := range []string{"Created your SSH key pair " + keyDir, "scaled to 0", "assuming its image runs as root"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, errOut)
		}
	}
	d, _ := client.AppsV1().Deployments("test").Get(ctx, "demo", metav1.GetOptions{})
	if img := d.Spec.Template.Spec.Containers[1].Image; img != "reg/devagent:v9" {
		t.Errorf("image %q, want the one from $%s", img, patcher.ImageEnv)
	}

	out, _, err = run("deploy/demo", "--dry-run=client", "-o", "json")
	if err != nil || !strings.Contains(out, `"shareProcessNamespace": true`) {
		t.Errorf("-o json: %v\n%s", err, out)
	}
	out, _, err = run("--list")
	if err != nil || !strings.Contains(out, "deployment.apps/demo") || !strings.Contains(out, "v9") {
		t.Errorf("--list: %v\n%s", err, out)
	}
	out, _, err = run("--remove", "deploy/demo")
	if err != nil || !strings.Contains(out, `deployment.apps/demo: removed container "devagent", volume "devagent-keys", spec.template.spec.shareProcessNamespace, annotations devpatch.kubectl-dev.io/{`) {
		t.Errorf("--remove: %v\n%s", err, out)
	}
	if _, _, err = run("deploy/demo", "-c", "nope"); err == nil || !strings.Contains(err.Error(), "its containers are: app") {
		t.Errorf("-c nope: %v", err)
	}
}
