package patcher

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestEffectiveIdentity(t *testing.T) {
	pod := &corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000), RunAsNonRoot: ptr.To(true)}}
	c := &corev1.Container{Name: "app", SecurityContext: &corev1.SecurityContext{
		RunAsUser: ptr.To[int64](2000), ReadOnlyRootFilesystem: ptr.To(true),
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "CAP_BPF", "NET_ADMIN"}},
	}}
	id := EffectiveIdentity(pod, c)
	if *id.UID != 2000 || *id.GID != 1000 || !id.RunAsNonRoot || !id.ReadOnlyRootFS || strings.Join(id.AddedCaps, ",") != "BPF,NET_ADMIN" {
		t.Fatalf("identity %+v (uid %d gid %d)", id, *id.UID, *id.GID)
	}
	if id := EffectiveIdentity(&corev1.PodSpec{}, &corev1.Container{}); id.UID != nil || id.GID != nil {
		t.Fatalf("empty spec gave %+v", id)
	}
}

func TestSelectMode(t *testing.T) {
	u := func(v int64) *int64 { return &v }
	cases := []struct {
		name      string
		requested Mode
		id        AppIdentity
		want      Mode
		warn      string
		err       string
	}{
		{"auto non-root", ModeAuto, AppIdentity{UID: u(1000), GID: u(1000)}, ModeSameUser, "", ""},
		{"auto non-root without gid warns", ModeAuto, AppIdentity{UID: u(1000)}, ModeSameUser, "no runAsGroup", ""},
		{"auto root", ModeAuto, AppIdentity{UID: u(0)}, ModeRoot, "", ""},
		{"auto unknown assumes root", ModeAuto, AppIdentity{}, ModeRoot, "assuming its image runs as root", ""},
		{"auto unknown non-root refuses", ModeAuto, AppIdentity{RunAsNonRoot: true}, "", "", "cannot tell its uid"},
		{"auto privileged refuses", ModeAuto, AppIdentity{UID: u(0), Privileged: true}, "", "", "only --mode ptrace"},
		{"same-user", ModeSameUser, AppIdentity{UID: u(1000), GID: u(1000)}, ModeSameUser, "", ""},
		{"same-user root app", ModeSameUser, AppIdentity{UID: u(0)}, "", "", "use --mode root"},
		{"same-user unknown", ModeSameUser, AppIdentity{}, "", "", "set runAsUser and runAsGroup"},
		{"root", ModeRoot, AppIdentity{UID: u(0)}, ModeRoot, "", ""},
		{"root non-root app", ModeRoot, AppIdentity{UID: u(1000)}, "", "", "use --mode same-user"},
		{"ptrace anything", ModePtrace, AppIdentity{UID: u(1234)}, ModePtrace, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, warns, err := SelectMode(c.requested, "app", c.id)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want it to contain %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %s, %v; want %s", got, err, c.want)
			}
			if c.warn == "" && len(warns) > 0 || c.warn != "" && (len(warns) != 1 || !strings.Contains(warns[0], c.warn)) {
				t.Fatalf("warnings %q, want one containing %q", warns, c.warn)
			}
		})
	}
}

func TestCheckPodSecurity(t *testing.T) {
	nonRoot := AppIdentity{UID: ptr.To[int64](1000), GID: ptr.To[int64](1000)}
	root := AppIdentity{UID: ptr.To[int64](0)}
	cases := []struct {
		level     string
		mode      Mode
		requested Mode
		id        AppIdentity
		err       string
	}{
		{"", ModePtrace, ModePtrace, root, ""},
		{"privileged", ModePtrace, ModePtrace, root, ""},
		{"baseline", ModeRoot, ModeAuto, root, ""},
		{"baseline", ModeSameUser, ModeAuto, nonRoot, ""},
		{"baseline", ModePtrace, ModePtrace, root, `namespace "ns" enforces Pod Security level "baseline", which rejects --mode ptrace: it adds SYS_PTRACE, which only the privileged level allows; use --mode root`},
		{"baseline", ModePtrace, ModePtrace, nonRoot, "use --mode same-user"},
		{"restricted", ModeSameUser, ModeAuto, nonRoot, ""},
		{"restricted", ModePtrace, ModePtrace, nonRoot, `enforces Pod Security level "restricted", which rejects --mode ptrace`},
		{"restricted", ModeRoot, ModeAuto, root, `which rejects mode root (picked for container "app"): it runs the agent as root; only --mode same-user fits there`},
		{"bogus", ModeRoot, ModeRoot, root, `level "bogus"`}, // invalid levels count as restricted
	}
	for _, c := range cases {
		err := CheckPodSecurity("ns", c.level, c.mode, c.requested, "app", c.id)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("level %q mode %s: err = %v, want %q", c.level, c.mode, err, c.err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("the refusal is not one line: %q", err)
		}
	}
}
