package agent

import (
	"bytes"
	"context"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
)

func writeKeys(t *testing.T, dir, host, ak string) {
	t.Helper()
	os.WriteFile(filepath.Join(dir, keys.HostKeyFile), []byte(host), 0o600)
	os.WriteFile(filepath.Join(dir, keys.AuthorizedKeysFile), []byte(ak), 0o644)
}

func noEnv(string) string { return "" }

func TestLoadKeys(t *testing.T) {
	hk, _ := keys.NewHostKey("demo")
	_, user, _ := keys.NewEd25519("me")
	dir := t.TempDir()

	writeKeys(t, dir, string(hk.PrivatePEM), user+"\n")
	k, err := LoadKeys(dir, noEnv)
	if err != nil || len(k.AuthorizedKeys) != 1 {
		t.Fatalf("LoadKeys = %+v, %v", k, err)
	}

	for _, c := range []struct{ name, host, ak, want string }{
		{"bad host key", "junk", user, "ssh_host_ed25519_key: the host key cannot be parsed"},
		{"no authorized key", string(hk.PrivatePEM), "# none\n", "authorized_keys: it holds no public key"},
		{"bad authorized key", string(hk.PrivatePEM), "ssh-ed25519 zzz", "authorized_keys: line 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := t.TempDir()
			writeKeys(t, d, c.host, c.ak)
			_, err := LoadKeys(d, noEnv)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadKeys = %v, want an error containing %q", err, c.want)
			}
		})
	}
	if _, err := LoadKeys(filepath.Join(dir, "missing"), noEnv); err == nil || !strings.Contains(err.Error(), "is the Secret of kubectl devpatch mounted") {
		t.Fatalf("missing folder: %v", err)
	}
	// The environment (ephemeral containers) wins over the folder.
	env := map[string]string{wire.EnvAgentHostKey: string(hk.PrivatePEM), wire.EnvAgentAuthorizedKeys: user}
	if _, err := LoadKeys(filepath.Join(dir, "missing"), func(k string) string { return env[k] }); err != nil {
		t.Fatalf("keys from the environment: %v", err)
	}
}

func TestRunWritesReadyFileAndProbe(t *testing.T) {
	hk, _ := keys.NewHostKey("demo")
	_, user, _ := keys.NewEd25519("me")
	dir := t.TempDir()
	writeKeys(t, dir, string(hk.PrivatePEM), user)
	ready := filepath.Join(t.TempDir(), "devagent", "ready")

	if err := Probe(ready, "/proc"); err == nil {
		t.Fatal("probe succeeded before the agent started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	var log bytes.Buffer
	go func() {
		done <- Run(ctx, Config{TargetContainer: "app", KeyDir: dir, ReadyFile: ready, SSHAddr: "127.0.0.1:0"}, noEnv, &log)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no ready file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The test binary is not called devagent: a fake /proc says it is.
	proc := t.TempDir()
	os.MkdirAll(filepath.Join(proc, strconv.Itoa(os.Getpid())), 0o755)
	os.WriteFile(filepath.Join(proc, strconv.Itoa(os.Getpid()), "cmdline"), []byte("/devagent\x00--key-dir=/x\x00"), 0o644)
	if err := Probe(ready, proc); err != nil {
		t.Fatalf("probe of a ready agent: %v", err)
	}
	if err := Probe(ready, "/proc"); err == nil {
		t.Fatal("probe accepted a ready file of a process that is not devagent")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ready); err == nil {
		t.Fatal("ready file left after stop")
	}
}

func TestRunFailsOnBadKeys(t *testing.T) {
	dir := t.TempDir()
	writeKeys(t, dir, "junk", "")
	var log bytes.Buffer
	err := Run(context.Background(), Config{KeyDir: dir, ReadyFile: filepath.Join(dir, "ready"), SSHAddr: "127.0.0.1:0"}, noEnv, &log)
	if err == nil || !strings.Contains(err.Error(), "host key") {
		t.Fatalf("Run with a bad host key = %v", err)
	}
}
