package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/kubectl-dev/kubectl-dev/hack/link"
)

// linkKubeconfig starts an emulated link of the profile in front of the
// cluster's API server, in this process, and writes a kubeconfig through
// it beside the cluster's (the plugins find the user's keys beside the
// kubeconfig in use). Both go when the test ends.
func linkKubeconfig(t *testing.T, profile string) (*link.Link, string) {
	t.Helper()
	p, err := link.Lookup(profile)
	if err != nil {
		t.Fatal(err)
	}
	up, err := link.Upstream(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	l, err := link.Start(p, "127.0.0.1:0", up)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	kc := filepath.Join(filepath.Dir(env.Kubeconfig), "e2e-link-"+rand.String(6)+".kubeconfig")
	if err := link.WriteKubeconfig(env.Kubeconfig, kc, l.Addr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(kc) })
	return l, kc
}

// TestDevsyncAutoCompressOverLink: --compress auto decides from the round
// trip it measures, not from the API server's address. Over the wan link,
// whose proxy listens on 127.0.0.1 like the local cluster, it compresses;
// straight to the local cluster it says what it measured.
func TestDevsyncAutoCompressOverLink(t *testing.T) {
	ns := sshDemo(t, env.Image("demo-python", "latest"), false)
	local := t.TempDir()
	syncTree(t, local)
	for i := range 50 {
		mustWrite(t, filepath.Join(local, "pkg", "f"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+".go"),
			"package pkg\n\n// Code shared by every file compresses as one stream.\nfunc F() int { return 42 }\n", 0o644)
	}
	r := devsyncOK(t, ns, local, "deploy/demo", "--dest", "/srv/direct", "--once", "-v=1")
	if !strings.Contains(r.Stderr, "(auto: the round trip to the agent is ") {
		t.Errorf("--compress auto -v=1 does not give the measured round trip: %q", r.Stderr)
	}

	_, kc := linkKubeconfig(t, "wan")
	start := time.Now()
	r = devsyncOK(t, ns, "--kubeconfig", kc, local, "deploy/demo", "--dest", "/srv/linked", "--once", "-v=1")
	t.Logf("devsync --once over wan: %s", time.Since(start))
	if !strings.Contains(r.Stderr, "file content is compressed with zstd (auto: the round trip to the agent is ") ||
		!strings.Contains(r.Stderr, "a network link; one zstd stream") {
		t.Errorf("over the wan link (a loopback address), --compress auto did not compress: %q", r.Stderr)
	}
	waitSameTree(t, ns, "deploy/demo", "/srv/linked", local, 30*time.Second)
}
