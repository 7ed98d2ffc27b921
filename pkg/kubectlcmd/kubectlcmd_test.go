package kubectlcmd

import "testing"

func TestCommand(t *testing.T) {
	for _, c := range []struct {
		name string
		f    Flags
		want string
	}{
		{"nothing given, default namespace", New("default", false), "kubectl devpatch deploy/demo"},
		{"-n default given", New("default", true), "kubectl devpatch -n default deploy/demo"},
		{"namespace from the context", New("dev", false), "kubectl devpatch -n dev deploy/demo"},
		{"connection flags", New("dev", true, Flag{"kubeconfig", "/home/me/my config"}, Flag{"context", "kind-x"}, Flag{"cluster", ""}),
			"kubectl devpatch -n dev '--kubeconfig=/home/me/my config' --context=kind-x deploy/demo"},
		{"zero value", Flags{}, "kubectl devpatch deploy/demo"},
	} {
		if got := c.f.Command("devpatch", "deploy/demo"); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"deploy/demo": "deploy/demo",
		"":            "''",
		"it's":        `'it'\''s'`,
		"a b":         "'a b'",
		"$HOME":       "'$HOME'",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKubectl(t *testing.T) {
	f := New("dev", false, Flag{"context", "kind"})
	if got, want := f.Kubectl("rollout", "resume", "deploy/demo"), "kubectl rollout resume deploy/demo -n dev --context=kind"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := f.String(), "-n dev --context=kind"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
