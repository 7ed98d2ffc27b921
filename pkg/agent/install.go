package agent

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/kubectl-dev/kubectl-dev/pkg/agentlog"
	"github.com/kubectl-dev/kubectl-dev/pkg/version"
)

// installMain copies the agent's own (static) binary to DEST, mode 0755:
// the init container of kubectl devpatch --supervise puts it into the
// emptyDir that the app container mounts, for "devagent supervise". The
// init container's log is one record.
func installMain(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: devagent install DEST")
		return 2
	}
	log := agentlog.New(stderr, slog.LevelInfo)
	if err := Install(args[0]); err != nil {
		log.Error("install failed", "path", args[0], "err", err)
		return 1
	}
	log.Info("installed the agent's binary", "path", args[0], "version", version.String())
	return 0
}

// Install copies the running executable to dest atomically.
func Install(dest string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".devagent-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}
