package agent

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// installMain copies the agent's own (static) binary to DEST, mode 0755:
// the init container of kubectl devpatch --supervise puts it into the
// emptyDir that the app container mounts, for "devagent supervise".
func installMain(args []string, log io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(log, "usage: devagent install DEST")
		return 2
	}
	if err := Install(args[0]); err != nil {
		fmt.Fprintln(log, "devagent install:", err)
		return 1
	}
	fmt.Fprintf(log, "devagent: installed %s\n", args[0])
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
