package agent

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/wire"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentlog"
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
	var log syncBuffer
	go func() {
		done <- Run(ctx, Config{TargetContainer: "app", KeyDir: dir, ReadyFile: ready, SSHAddr: "127.0.0.1:0", Logger: agentlog.New(&log, slog.LevelInfo)}, noEnv)
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
	for _, want := range []string{
		`level=INFO msg="devagent starting" version=`,
		` target_container=app` + "\n",
		`level=INFO msg="keys loaded" host_key=SHA256:`,
		` authorized_keys=1 from=` + dir + "\n",
		`level=INFO msg="SSH server listening" addr=127.0.0.1:`,
		`level=INFO msg=ready ready_file=` + ready + "\n",
		`level=INFO msg=stopping` + "\n",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log has no %q:\n%s", want, log.String())
		}
	}
}

// syncBuffer is a bytes.Buffer for a logger used from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRunFailsOnBadKeys(t *testing.T) {
	dir := t.TempDir()
	writeKeys(t, dir, "junk", "")
	var log syncBuffer
	err := Run(context.Background(), Config{KeyDir: dir, ReadyFile: filepath.Join(dir, "ready"), SSHAddr: "127.0.0.1:0", Logger: agentlog.New(&log, slog.LevelInfo)}, noEnv)
	if err == nil || !strings.Contains(err.Error(), "host key") {
		t.Fatalf("Run with a bad host key = %v", err)
	}
	if strings.Contains(log.String(), "msg=ready") {
		t.Errorf("an agent with a bad host key logged that it is ready:\n%s", log.String())
	}
}

// --version and usage errors stay plain text, not log records. (Main's
// failure path is not run here: it writes /dev/termination-log.)
func TestMainOutput(t *testing.T) {
	var out bytes.Buffer
	if code := Main([]string{"--version"}, &out); code != 0 || !strings.HasPrefix(out.String(), "devagent ") || strings.Contains(out.String(), "level=") {
		t.Errorf("--version = %d, %q", code, out.String())
	}
	out.Reset()
	if code := Main([]string{"--log-level", "loud"}, &out); code != 2 || !strings.Contains(out.String(), "debug, info, warn or error") {
		t.Errorf("--log-level loud = %d, %q", code, out.String())
	}
}
