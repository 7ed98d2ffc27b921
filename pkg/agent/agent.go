// Package agent is the devagent: the process that runs in the sidecar
// container next to the app, sharing its process namespace.
//
// Usage:
//
//	devagent [--target-container NAME] [--key-dir DIR] [--ready-file FILE] [--log-level LEVEL]
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
//
// The agent logs through one *slog.Logger (pkg/agentlog: key=value lines on
// stderr, "kubectl logs -c devagent"), made in Main and passed down in
// Config.Logger; "devagent supervise" makes its own the same way. The
// command-line output (--version, usage, the probe's message, which the
// kubelet shows as the probe's failure) stays plain text.
package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentlog"
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
	// Logger receives the agent's records, the SSH server's among them;
	// nil discards.
	Logger *slog.Logger
}

// Keys are the agent's loaded keys.
type Keys struct {
	HostKey        ssh.Signer
	AuthorizedKeys []keys.AuthorizedKey
}

// Main runs the agent (or one of its subcommands) with stderr as its log
// and returns its exit code.
func Main(args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "probe" {
		return probeMain(args[1:], stderr)
	}
	if len(args) > 0 && args[0] == "supervise" {
		return superviseMain(args[1:], stderr)
	}
	if len(args) > 0 && args[0] == "install" {
		return installMain(args[1:], stderr)
	}
	if len(args) > 0 && args[0] == approc.HelperSFTP {
		// The helpers' stderr is read by the agent (sftp: a log record per
		// line) or is the user's terminal (shell): plain text.
		return approc.HelperMain(args[1:], os.Stdin, os.Stdout, stderr)
	}
	if len(args) > 0 && args[0] == approc.HelperShell {
		return approc.ShellHelperMain(args[1:], stderr)
	}
	fs := flag.NewFlagSet("devagent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := Config{}
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.StringVar(&cfg.TargetContainer, "target-container", os.Getenv(wire.EnvAgentTargetContainer), "the app container this agent serves (env "+wire.EnvAgentTargetContainer+")")
	fs.StringVar(&cfg.KeyDir, "key-dir", envOr(wire.EnvAgentKeyDir, DefaultKeyDir), "folder holding "+keys.HostKeyFile+" and "+keys.AuthorizedKeysFile+" (env "+wire.EnvAgentKeyDir+")")
	fs.StringVar(&cfg.ReadyFile, "ready-file", envOr(wire.EnvAgentReadyFile, DefaultReadyFile()), "file written once the keys are loaded (env "+wire.EnvAgentReadyFile+")")
	logLevel := fs.String("log-level", os.Getenv(agentlog.EnvLevel), "debug, info (the default), warn or error (env "+agentlog.EnvLevel+")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stderr, "devagent", version.String())
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "devagent: unexpected argument %q (subcommands: probe)\n", fs.Arg(0))
		return 2
	}
	level, err := agentlog.ParseLevel(*logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "devagent:", err)
		return 2
	}
	cfg.Logger = agentlog.New(stderr, level)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := Run(ctx, cfg, os.Getenv); err != nil {
		cfg.Logger.Error("the agent cannot run", "err", err)
		// Also the container's termination message, which kubectl describe and
		// kubectl devpatch show when the agent does not start.
		_ = os.WriteFile("/dev/termination-log", []byte(err.Error()), 0o644)
		return 1
	}
	return 0
}

// Run loads the keys, marks the agent ready and waits for ctx to end.
func Run(ctx context.Context, cfg Config, getenv func(string) string) error {
	log := agentlog.OrDiscard(cfg.Logger)
	log.Info("devagent starting", "version", version.String(), "target_container", cfg.TargetContainer)
	k, err := LoadKeys(cfg.KeyDir, getenv)
	if err != nil {
		return err
	}
	keySource := cfg.KeyDir
	if getenv(wire.EnvAgentHostKey) != "" || getenv(wire.EnvAgentAuthorizedKeys) != "" {
		keySource = "environment"
	}
	log.Info("keys loaded", "host_key", ssh.FingerprintSHA256(k.HostKey.PublicKey()), "authorized_keys", len(k.AuthorizedKeys), "from", keySource)
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
	log.Info("SSH server listening", "addr", srv.Addr())
	if err := writeReady(cfg.ReadyFile); err != nil {
		return fmt.Errorf("writing the ready file: %w", err)
	}
	defer os.Remove(cfg.ReadyFile)
	log.Info("ready", "ready_file", cfg.ReadyFile)
	<-ctx.Done()
	log.Info("stopping")
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

// probeMain's message is plain text: the kubelet shows it in the pod's
// events ("Readiness probe failed: ...").
func probeMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("devagent probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	readyFile := fs.String("ready-file", envOr(wire.EnvAgentReadyFile, DefaultReadyFile()), "the agent's ready file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := Probe(*readyFile, "/proc"); err != nil {
		fmt.Fprintln(stderr, "devagent probe:", err)
		return 1
	}
	if err := sshserver.Probe(wire.Addr, time.Second); err != nil {
		fmt.Fprintln(stderr, "devagent probe: not ready:", err)
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
