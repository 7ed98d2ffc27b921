package devpatch

import (
	"context"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/cli/clitest"
	"github.com/kubectl-dev/kubectl-dev/pkg/patcher"
)

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
		{"remove a job", func(o *PatchOptions) { o.Remove, o.Kind = true, patcher.KindJob }, "cannot be removed"},
		{"supervise a cronjob", func(o *PatchOptions) { o.Supervise, o.Kind = true, patcher.KindCronJob }, "--supervise works on deployments"},
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
		o.Client, o.Mapper, o.KeyDir = client, clitest.Mapper(t), keyDir
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

	// A CronJob: its job template gets the agent as a native sidecar.
	client.BatchV1().CronJobs("test").Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "test"},
		Spec: batchv1.CronJobSpec{Schedule: "@daily", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "app", Image: "demo"}}}}}}},
	}, metav1.CreateOptions{})
	out, _, err = run("cj/nightly", "--dry-run=client", "-o", "yaml")
	if err != nil || !strings.Contains(out, "kind: CronJob") || !strings.Contains(out, "jobTemplate:") || !strings.Contains(out, "restartPolicy: Always") {
		t.Errorf("cj/nightly -o yaml: %v\n%s", err, out)
	}
	out, _, err = run("cronjob/nightly")
	if err != nil || !strings.Contains(out, "cronjob.batch/nightly patched") || !strings.Contains(out, "kubectl create -n test job NAME --from=cronjob/nightly") ||
		!strings.Contains(out, "kubectl devssh -n test job/NAME") {
		t.Errorf("cronjob/nightly: %v\n%s", err, out)
	}
	out, _, err = run("--remove", "cronjob/nightly")
	if err != nil || !strings.Contains(out, `cronjob.batch/nightly: removed volume "devagent-keys", init container "devagent"`) {
		t.Errorf("--remove cronjob/nightly: %v\n%s", err, out)
	}
	// The undo a user pastes names the field manager that patched.
	out, _, err = run("deploy/demo", "--field-manager", "team-x")
	if err != nil || !strings.Contains(out, "Undo with: kubectl devpatch -n test --remove deploy/demo --field-manager=team-x") {
		t.Errorf("--field-manager team-x: %v\n%s", err, out)
	}
}
