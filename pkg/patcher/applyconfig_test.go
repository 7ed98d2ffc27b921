package patcher

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

func specFor(mode Mode, app AppIdentity) AgentSpec {
	return AgentSpec{Name: "devagent", Image: "ghcr.io/kubectl-dev/devagent:v1.2.3", Target: "app", Mode: mode, App: app, SecretName: "demo-devagent"}
}

func toYAML(t *testing.T, obj any) string {
	t.Helper()
	b, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The whole applied object, once, so that any change to it is deliberate.
const deploymentSameUserGolden = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo
  namespace: ns
spec:
  template:
    metadata:
      annotations:
        devpatch.kubectl-dev.io/agent-container: devagent
        devpatch.kubectl-dev.io/agent-version: v1.2.3
        devpatch.kubectl-dev.io/mode: same-user
        devpatch.kubectl-dev.io/target-container: app
    spec:
      containers:
      - args:
        - --target-container=app
        - --key-dir=/etc/devagent
        image: ghcr.io/kubectl-dev/devagent:v1.2.3
        imagePullPolicy: IfNotPresent
        name: devagent
        readinessProbe:
          exec:
            command:
            - /devagent
            - probe
          failureThreshold: 3
          periodSeconds: 2
          timeoutSeconds: 2
        resources:
          limits:
            cpu: "2"
            memory: 1Gi
          requests:
            cpu: 10m
            memory: 32Mi
        securityContext:
          allowPrivilegeEscalation: false
          capabilities:
            drop:
            - ALL
          runAsGroup: 2000
          runAsNonRoot: true
          runAsUser: 1000
          seccompProfile:
            type: RuntimeDefault
        terminationMessagePolicy: FallbackToLogsOnError
        volumeMounts:
        - mountPath: /etc/devagent
          name: devagent-keys
          readOnly: true
      shareProcessNamespace: true
      volumes:
      - name: devagent-keys
        secret:
          defaultMode: 292
          secretName: demo-devagent
`

func TestDeploymentApplyConfigGolden(t *testing.T) {
	ac, err := WorkloadApplyConfig(KindDeployment, "ns", "demo", PodTemplate(specFor(ModeSameUser, AppIdentity{UID: ptr.To[int64](1000), GID: ptr.To[int64](2000)})))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(deploymentSameUserGolden, toYAML(t, ac)); diff != "" {
		t.Errorf("apply configuration (-want +got):\n%s", diff)
	}
}

func TestApplyConfigPerKind(t *testing.T) {
	tpl := PodTemplate(specFor(ModeRoot, AppIdentity{}))
	want := toYAML(t, map[string]any{"template": tpl})
	for _, k := range []Kind{KindDeployment, KindStatefulSet, KindDaemonSet, KindReplicaSet} {
		ac, err := WorkloadApplyConfig(k, "ns", "w", tpl)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := ToMap(ac)
		if m["apiVersion"] != "apps/v1" || m["kind"] != string(k) {
			t.Errorf("%s: apiVersion/kind = %v/%v", k, m["apiVersion"], m["kind"])
		}
		if got := toYAML(t, m["spec"]); got != want {
			t.Errorf("%s: spec =\n%s\nwant\n%s", k, got, want)
		}
		// Only the template: never replicas, selector or other containers.
		if spec := m["spec"].(map[string]any); len(spec) != 1 {
			t.Errorf("%s: spec has %d fields, want only template", k, len(spec))
		}
		empty, _ := WorkloadApplyConfig(k, "ns", "w", nil)
		if m, _ := ToMap(empty); m["spec"] != nil {
			t.Errorf("%s: the removal configuration has a spec: %v", k, m["spec"])
		}
	}
	if _, err := WorkloadApplyConfig(KindPod, "ns", "p", tpl); err == nil {
		t.Error("a pod got a pod-template apply configuration")
	}
}

func TestApplyConfigIsDeterministic(t *testing.T) {
	app := AppIdentity{UID: ptr.To[int64](0), AddedCaps: []string{"NET_ADMIN", "BPF"}}
	a, _ := WorkloadApplyConfig(KindDeployment, "ns", "demo", PodTemplate(specFor(ModeRoot, app)))
	b, _ := WorkloadApplyConfig(KindDeployment, "ns", "demo", PodTemplate(specFor(ModeRoot, app)))
	if toYAML(t, a) != toYAML(t, b) {
		t.Fatal("two builds of the same spec differ")
	}
}

func TestSecurityContextPerMode(t *testing.T) {
	uid := func(v int64) *int64 { return &v }
	cases := []struct {
		mode Mode
		app  AppIdentity
		want string
	}{
		{ModeSameUser, AppIdentity{UID: uid(1000), GID: uid(1000)},
			"allowPrivilegeEscalation: false\ncapabilities:\n  drop:\n  - ALL\nrunAsGroup: 1000\nrunAsNonRoot: true\nrunAsUser: 1000\nseccompProfile:\n  type: RuntimeDefault\n"},
		{ModeRoot, AppIdentity{UID: uid(0)}, "runAsGroup: 0\nrunAsNonRoot: false\nrunAsUser: 0\n"},
		// A root agent needs a superset of the app's capabilities.
		{ModeRoot, AppIdentity{AddedCaps: []string{"NET_ADMIN"}, GID: uid(5)}, "capabilities:\n  add:\n  - NET_ADMIN\nrunAsGroup: 5\nrunAsNonRoot: false\nrunAsUser: 0\n"},
		{ModePtrace, AppIdentity{UID: uid(1000), GID: uid(1000)}, "capabilities:\n  add:\n  - SYS_PTRACE\nrunAsGroup: 1000\nrunAsNonRoot: false\nrunAsUser: 0\n"},
	}
	for _, c := range cases {
		got := toYAML(t, securityContextAC(AgentSecurityContext(c.mode, c.app)))
		if got != c.want {
			t.Errorf("%s %+v:\n%s\nwant\n%s", c.mode, c.app, got, c.want)
		}
	}
}

func TestEphemeralAgent(t *testing.T) {
	ec := EphemeralAgent(specFor(ModeSameUser, AppIdentity{UID: ptr.To[int64](1000), GID: ptr.To[int64](1000)}))
	if ec.TargetContainerName != "app" || ec.ReadinessProbe != nil || ec.Resources.Limits != nil || len(ec.VolumeMounts) != 0 || len(ec.Ports) != 0 {
		t.Fatalf("ephemeral container has fields ephemeral containers may not have: %+v", ec)
	}
	var envs []string
	for _, e := range ec.Env {
		envs = append(envs, e.Name+"="+e.ValueFrom.SecretKeyRef.Name+"/"+e.ValueFrom.SecretKeyRef.Key)
	}
	if got := strings.Join(envs, " "); got != "DEVAGENT_AUTHORIZED_KEYS=demo-devagent/authorized_keys DEVAGENT_HOST_KEY=demo-devagent/ssh_host_ed25519_key" {
		t.Fatalf("env = %s", got)
	}
}

func TestSelectContainer(t *testing.T) {
	cs := []corev1.Container{{Name: "app"}, {Name: "proxy"}}
	cases := []struct {
		name, requested, annot, want, err string
		warn                              bool
	}{
		{name: "first", want: "app"},
		{name: "-c", requested: "proxy", want: "proxy"},
		{name: "annotation", annot: "proxy", want: "proxy"},
		{name: "-c wins over the annotation", requested: "app", annot: "proxy", want: "app"},
		{name: "stale annotation", annot: "gone", want: "app", warn: true},
		{name: "unknown -c", requested: "nope", err: `container "nope" not found in deployment.apps/demo; its containers are: app, proxy`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			annots := map[string]string{}
			if c.annot != "" {
				annots[DefaultContainerAnnotKey] = c.annot
			}
			got, warns, err := SelectContainer(cs, annots, c.requested, "deployment.apps/demo")
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want || (len(warns) > 0) != c.warn {
				t.Fatalf("got %q %v %v, want %q (warning %v)", got, warns, err, c.want, c.warn)
			}
		})
	}
}

func TestValidateFieldManager(t *testing.T) {
	for _, ok := range []string{"devpatch", "devpatch.example.io", "alice"} {
		if err := ValidateFieldManager(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"kubectl", "kubectl-devpatch", "Kubectl-x", "", "before-first-apply"} {
		if err := ValidateFieldManager(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := ValidateFieldManager("kubectl-devpatch"); !strings.Contains(err.Error(), "Flux") {
		t.Errorf("the refusal does not say why: %v", err)
	}
}

func TestPullPolicyAndVersion(t *testing.T) {
	for img, want := range map[string]string{
		"ghcr.io/kubectl-dev/devagent:v0.0.0-dev":   "Always",
		"127.0.0.1:5000/devagent:v0.3.0-4-gabc-dev": "Always",
		"ghcr.io/kubectl-dev/devagent:v1.0.0":       "IfNotPresent",
		"localhost:5000/devagent":                   "Always",
		"ghcr.io/x/devagent@sha256:abcd":            "IfNotPresent",
	} {
		if got := PullPolicy(img); got != want {
			t.Errorf("PullPolicy(%q) = %s, want %s", img, got, want)
		}
	}
	if v := ImageVersion("localhost:5000/devagent:v1.0.0"); v != "v1.0.0" {
		t.Errorf("ImageVersion = %q", v)
	}
	if v := ImageVersion("localhost:5000/devagent"); v != "latest" {
		t.Errorf("ImageVersion without tag = %q", v)
	}
}
