package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

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

	l := env.Link(t, "wan")
	start := time.Now()
	r = devsyncOK(t, ns, "--kubeconfig", l.Kubeconfig, local, "deploy/demo", "--dest", "/srv/linked", "--once", "-v=1")
	t.Logf("devsync --once over wan: %s", time.Since(start))
	if !strings.Contains(r.Stderr, "file content is compressed with zstd (auto: the round trip to the agent is ") ||
		!strings.Contains(r.Stderr, "a network link; one zstd stream") {
		t.Errorf("over the wan link (a loopback address), --compress auto did not compress: %q", r.Stderr)
	}
	waitSameTree(t, ns, "deploy/demo", "/srv/linked", local, 30*time.Second)
}
