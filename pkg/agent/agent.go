// Package agent is the devagent: the process that runs in the sidecar
// container next to the app, sharing its process namespace.
//
// Usage:
//
//	devagent [--target-container NAME] [--key-dir DIR] [--ready-file FILE]
//	devagent probe [--ready-file FILE]
//	devagent supervise [--socket PATH] -- ARGV...  (the app's supervisor, see pkg/supervisor)
//	devagent install DEST  (copy this static binary, e.g. into an emptyDir; devpatch --supervise)
//	devagent sftp-in-app|shell-in-app ...  (helpers of the SSH server, see pkg/approc)
//	devagent --version
//
// At start the agent loads its SSH host key and the authorized public keys,
// from files in the key folder (the Secret that kubectl devpatch mounts, by
// default at /etc/devagent) or, for an ephemeral container that cannot mount
// volumes, from the environment variables DEVAGENT_HOST_KEY and
// DEVAGENT_AUTHORIZED_KEYS. Unusable keys end it with a message and exit code
// 1. Once they are loaded it writes its ready file, which "devagent probe"
// (the container's exec readiness probe) checks.
package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kubectl-dev/kubectl-dev/pkg/approc"
	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshserver"
	"github.com/kubectl-dev/kubectl-dev/pkg/version"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

// DefaultKeyDir is where kubectl devpatch mounts the agent's Secret.
const DefaultKeyDir = wire.KeyMountPath

// DefaultReadyFile is the file the agent writes once its keys are loaded.
func DefaultReadyFile() string { return filepath.Join(os.TempDir(), "devagent", "ready") }

// Config is what the agent runs with.
type Config struct {
	TargetContainer string
	KeyDir          string
	ReadyFile       string
	// SSHAddr is the SSH server's loopback address (wire.Addr when empty).
	SSHAddr string
}

// Keys are the agent's loaded keys.
type Keys struct {
	HostKey        ssh.Signer
	AuthorizedKeys []keys.AuthorizedKey
}

// Main runs the agent (or its probe) and returns its exit code.
func Main(args []string, log io.Writer) int {
	if len(args) > 0 && args[0] == "probe" {
		return probeMain(args[1:], log)
	}
	if len(args) > 0 && args[0] == "supervise" {
		return superviseMain(args[1:], log)
	}
	if len(args) > 0 && args[0] == "install" {
		return installMain(args[1:], log)
	}
	if len(args) > 0 && args[0] == approc.HelperSFTP {
		return approc.HelperMain(args[1:], os.Stdin, os.Stdout, log)
	}
	if len(args) > 0 && args[0] == approc.HelperShell {
		return approc.ShellHelperMain(args[1:], log)
	}
	fs := flag.NewFlagSet("devagent", flag.ContinueOnError)
	fs.SetOutput(log)
	cfg := Config{}
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.StringVar(&cfg.TargetContainer, "target-container", os.Getenv(wire.EnvAgentTargetContainer), "the app container this agent serves (env "+wire.EnvAgentTargetContainer+")")
	fs.StringVar(&cfg.KeyDir, "key-dir", envOr(wire.EnvAgentKeyDir, DefaultKeyDir), "folder holding "+keys.HostKeyFile+" and "+keys.AuthorizedKeysFile+" (env "+wire.EnvAgentKeyDir+")")
	fs.StringVar(&cfg.ReadyFile, "ready-file", envOr(wire.EnvAgentReadyFile, DefaultReadyFile()), "file written once the keys are loaded (env "+wire.EnvAgentReadyFile+")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(log, "devagent", version.String())
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(log, "devagent: unexpected argument %q (subcommands: probe)\n", fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := Run(ctx, cfg, os.Getenv, log); err != nil {
		fmt.Fprintln(log, "devagent:", err)
		// Also the container's termination message, which kubectl describe and
		// kubectl devpatch show when the agent does not start.
		_ = os.WriteFile("/dev/termination-log", []byte(err.Error()), 0o644)
		return 1
	}
	return 0
}

// Run loads the keys, marks the agent ready and waits for ctx to end.
func Run(ctx context.Context, cfg Config, getenv func(string) string, log io.Writer) error {
	fmt.Fprintf(log, "devagent %s starting (target container %q)\n", version.String(), cfg.TargetContainer)
	k, err := LoadKeys(cfg.KeyDir, getenv)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "devagent: host key %s, %d authorized key(s)\n", ssh.FingerprintSHA256(k.HostKey.PublicKey()), len(k.AuthorizedKeys))
	// The authorized keys are re-read on every authentication from the
	// mounted Secret, so that kubectl devpatch can add a key without a restart.
	authorized := sshserver.FileAuthorizedKeys(filepath.Join(cfg.KeyDir, keys.AuthorizedKeysFile))
	if getenv(wire.EnvAgentAuthorizedKeys) != "" {
		authorized = sshserver.StaticAuthorizedKeys(k.AuthorizedKeys)
	}
	srv, err := sshserver.ForAgent(k.HostKey, authorized, log)
	if err != nil {
		return err
	}
	registerDevsync(srv, log)
	if err := srv.StartOn(ctx, cfg.SSHAddr); err != nil {
		return err
	}
	fmt.Fprintf(log, "devagent: SSH server on %s\n", srv.Addr())
	if err := writeReady(cfg.ReadyFile); err != nil {
		return fmt.Errorf("writing the ready file: %w", err)
	}
	defer os.Remove(cfg.ReadyFile)
	fmt.Fprintln(log, "devagent: ready")
	<-ctx.Done()
	fmt.Fprintln(log, "devagent stopping")
	return nil
}

// LoadKeys reads and checks the host key and the authorized keys, from the
// environment when it carries them, else from dir.
func LoadKeys(dir string, getenv func(string) string) (*Keys, error) {
	read := func(env, file string) ([]byte, string, error) {
		if v := getenv(env); v != "" {
			return []byte(v), "$" + env, nil
		}
		p := filepath.Join(dir, file)
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, p, fmt.Errorf("%s: %w (is the Secret of kubectl devpatch mounted at %s?)", p, err, dir)
		}
		return b, p, nil
	}
	hostPEM, hostSrc, err := read(wire.EnvAgentHostKey, keys.HostKeyFile)
	if err != nil {
		return nil, err
	}
	signer, err := keys.CheckHostKey(hostPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; re-run kubectl devpatch to create a new one", hostSrc, err)
	}
	akData, akSrc, err := read(wire.EnvAgentAuthorizedKeys, keys.AuthorizedKeysFile)
	if err != nil {
		return nil, err
	}
	ak, err := keys.RequireAuthorizedKeys(akData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; re-run kubectl devpatch to add your key", akSrc, err)
	}
	return &Keys{HostKey: signer, AuthorizedKeys: ak}, nil
}

func writeReady(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	content := fmt.Sprintf("pid=%d\nversion=%s\n", os.Getpid(), version.Version)
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Probe succeeds when the ready file names a running devagent process.
func Probe(readyFile, procDir string) error {
	b, err := os.ReadFile(readyFile)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("not ready: the agent has not loaded its keys (no %s)", readyFile)
	}
	if err != nil {
		return err
	}
	pid := 0
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "pid="); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if pid <= 0 {
		return fmt.Errorf("not ready: %s names no process", readyFile)
	}
	cmdline, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "cmdline"))
	if err != nil || !strings.Contains(filepath.Base(strings.SplitN(string(cmdline), "\x00", 2)[0]), "devagent") {
		return fmt.Errorf("not ready: the agent (pid %d) that wrote %s is not running", pid, readyFile)
	}
	return nil
}

func probeMain(args []string, log io.Writer) int {
	fs := flag.NewFlagSet("devagent probe", flag.ContinueOnError)
	fs.SetOutput(log)
	readyFile := fs.String("ready-file", envOr(wire.EnvAgentReadyFile, DefaultReadyFile()), "the agent's ready file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := Probe(*readyFile, "/proc"); err != nil {
		fmt.Fprintln(log, "devagent probe:", err)
		return 1
	}
	if err := sshserver.Probe(wire.Addr, time.Second); err != nil {
		fmt.Fprintln(log, "devagent probe: not ready:", err)
		return 1
	}
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
