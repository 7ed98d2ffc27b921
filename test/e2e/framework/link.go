package framework

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kubectl-dev/kubectl-dev/hack/link"
	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
)

// LinkedEnv is an emulated network link (hack/link) of one test's own in
// front of the cluster's API server, and a kubeconfig whose server goes
// through it. A plugin run with Command crosses the link; the test's own
// checks (env.Client, env.KubectlT, devssh through env.Kubectl) go direct.
type LinkedEnv struct {
	*link.Link
	// Kubeconfig is the kubeconfig through the link, in the test's
	// temporary folder; the kubectl-dev key folder beside it is the one
	// beside the direct kubeconfig (a symlink), so that the plugins find
	// the identity devpatch created.
	Kubeconfig string
}

// Link starts a link with the named profile (lan, wan, far) in the test
// process, writes its kubeconfig and closes the link when the test ends.
func (e *Env) Link(t *testing.T, profile string) *LinkedEnv {
	t.Helper()
	p, err := link.Lookup(profile)
	if err != nil {
		t.Fatal(err)
	}
	upstream, err := link.Upstream(e.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	l, err := link.Start(p, "127.0.0.1:0", upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	dir := t.TempDir()
	kc := filepath.Join(dir, "link.kubeconfig")
	if err := link.WriteKubeconfig(e.Kubeconfig, kc, l.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(keys.Dir(e.Kubeconfig, ""), keys.Dir(kc, "")); err != nil {
		t.Fatal(err)
	}
	t.Logf("link %s (%s) on %s in front of %s", p.Name, p.Summary, l.Addr(), upstream)
	return &LinkedEnv{Link: l, Kubeconfig: kc}
}

// Command is kubectl with args (a plugin: "devsync", ...) with KUBECONFIG
// set to the link's kubeconfig: every connection it makes to the API
// server, port-forward streams included, crosses the link.
func (l *LinkedEnv) Command(kubectl string, args ...string) *exec.Cmd {
	cmd := exec.Command(kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+l.Kubeconfig)
	return cmd
}
