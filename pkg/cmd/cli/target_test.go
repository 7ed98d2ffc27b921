package cli

import (
	"strings"
	"testing"

	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/cli/clitest"
	"github.com/kubectl-dev/kubectl-dev/pkg/patcher"
)

func TestResolveKind(t *testing.T) {
	m := clitest.Mapper(t)
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

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		args      []string
		typ, name string
		ok        bool
	}{
		{[]string{"deploy/demo"}, "deploy", "demo", true},
		{[]string{"deploy", "demo"}, "deploy", "demo", true},
		{[]string{"demo"}, "", "", false},
		{[]string{"deploy/"}, "", "", false},
		{[]string{"/demo"}, "", "", false},
		{[]string{"deploy", ""}, "", "", false},
		{nil, "", "", false},
		{[]string{"a/b", "c"}, "", "", false},
		{[]string{"a", "b", "c"}, "", "", false},
	} {
		got, err := ParseTarget(c.args)
		if (err == nil) != c.ok || got.Type != c.typ || got.Name != c.name {
			t.Errorf("ParseTarget(%q) = %+v, %v", c.args, got, err)
		}
	}
}

func TestParsePodOrTarget(t *testing.T) {
	for _, c := range []struct {
		arg, want string
		ok        bool
	}{
		{"demo-7d9f", "pod/demo-7d9f", true},
		{"deploy/demo", "deploy/demo", true},
		{"deployments.apps/demo", "deployments.apps/demo", true},
		{"deploy/", "", false},
		{"", "", false},
	} {
		got, err := ParsePodOrTarget(c.arg)
		if (err == nil) != c.ok || (c.ok && got.String() != c.want) {
			t.Errorf("ParsePodOrTarget(%q) = %v, %v; want %q", c.arg, got, err, c.want)
		}
	}
}

func TestAliasKind(t *testing.T) {
	for in, want := range map[string]string{"deploy": "deployment", "deployments.apps": "deployment", "sts": "sts", "pod": "pod", "po": "pod", "Job": "job"} {
		if got := (Target{Type: in, Name: "x"}).AliasKind(); got != want {
			t.Errorf("AliasKind(%q) = %q, want %q", in, got, want)
		}
	}
}
