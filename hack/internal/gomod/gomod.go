// Package gomod fetches a Go module's source at a version through the
// module proxy, for the test bed's tools that are built from their modules
// (Kubernetes, BuildKit).
package gomod

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
)

// Download runs `go mod download -json mod@version` with env (nil: the
// process's) outside any module and returns the module's directory in the
// module cache (read-only: copy it to build inside it).
func Download(ctx context.Context, modVersion string, env []string) (string, error) {
	tmp, err := os.MkdirTemp("", "kdev-moddl")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", modVersion)
	cmd.Dir = tmp
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w\n%s%s", modVersion, err, out, stderr.String())
	}
	return parse(modVersion, out)
}

// parse reads the directory from go mod download's JSON.
func parse(modVersion string, out []byte) (string, error) {
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("go mod download %s: %w", modVersion, err)
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s", modVersion, info.Error)
	}
	return info.Dir, nil
}
