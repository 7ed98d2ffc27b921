package buildkit

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// The pure parts: the daemon's configuration and command lines, buildctl's
// command line and what it writes back. No build tag: they are tested
// everywhere.

// daemonConfig renders buildkitd.toml: the registries given (the local one,
// and the same through an emulated link: testbed.RegistryLinkAddr) speak
// plain HTTP.
func daemonConfig(registries ...string) string {
	var b strings.Builder
	b.WriteString(`# Written by kdev (hack/buildkit) for one daemon.
[worker.oci]
  enabled = true
  snapshotter = "overlayfs"
[worker.containerd]
  enabled = false
`)
	for _, r := range registries {
		fmt.Fprintf(&b, "\n[registry.%q]\n  http = true\n  insecure = true\n", r)
	}
	return b.String()
}

// daemonArgs is rootlesskit's command line that runs buildkitd. The network
// namespace stays the host's (rootlesskit's default, --net=host), so that
// buildkitd reaches the registry on the host's loopback; --pidns puts
// buildkitd and the runc containers of RUN steps into a PID namespace of
// their own, which ends with buildkitd.
func daemonArgs(buildkitd, addr, root, config, rootlesskitState string) []string {
	return []string{
		"--state-dir=" + rootlesskitState,
		"--net=host",
		"--pidns",
		buildkitd,
		"--addr=" + addr,
		"--root=" + root,
		"--config=" + config,
	}
}

// BuildOptions say what Build builds and where it pushes.
type BuildOptions struct {
	// Dir is the build context.
	Dir string
	// Dockerfile is the Dockerfile's path. Empty: Dir/Dockerfile.
	Dockerfile string
	// Image is the full reference pushed to (127.0.0.1:5000/kubectl-dev/x:tag).
	Image string
	// BuildArgs are the Dockerfile's ARGs (--build-arg).
	BuildArgs map[string]string
	// Target is the stage to build. Empty: the last.
	Target string
	// Output receives BuildKit's progress, plain. Nil: kept only to
	// report an error.
	Output io.Writer
	// Insecure pushes over plain HTTP. Build sets it for the test bed's
	// registry (testbed.RegistryAddr()).
	Insecure bool
}

// buildctlArgs is buildctl's command line for o, after --addr.
func buildctlArgs(o BuildOptions, metadataFile string) ([]string, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("no build context directory given")
	}
	if o.Image == "" {
		return nil, fmt.Errorf("no image to push given (-t)")
	}
	dockerfile := o.Dockerfile
	if dockerfile == "" {
		dockerfile = filepath.Join(o.Dir, "Dockerfile")
	}
	output := "type=image,name=" + o.Image + ",push=true,rewrite-timestamp=true"
	if strings.Contains(o.Image, ",") || strings.Contains(o.Image, `"`) {
		return nil, fmt.Errorf("image %q: a reference has no comma or quote", o.Image)
	}
	if o.Insecure {
		output += ",registry.insecure=true"
	}
	args := []string{
		"build",
		"--progress=plain",
		"--frontend=dockerfile.v0",
		"--local=context=" + o.Dir,
		"--local=dockerfile=" + filepath.Dir(dockerfile),
		"--opt=filename=" + filepath.Base(dockerfile),
	}
	if o.Target != "" {
		args = append(args, "--opt=target="+o.Target)
	}
	buildArgs := map[string]string{
		// Timestamps from the epoch: the same inputs make the same image
		// digest, so an unchanged image is not pushed as a new one.
		"SOURCE_DATE_EPOCH": "0",
	}
	for k, v := range o.BuildArgs {
		buildArgs[k] = v
	}
	keys := make([]string, 0, len(buildArgs))
	for k := range buildArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" || strings.Contains(k, "=") {
			return nil, fmt.Errorf("build arg %q: a name has no '='", k)
		}
		args = append(args, "--opt=build-arg:"+k+"="+buildArgs[k])
	}
	return append(args, "--output="+output, "--metadata-file="+metadataFile), nil
}

// pushedDigest reads the manifest digest buildctl's --metadata-file gives.
func pushedDigest(metadata []byte) (string, error) {
	var m struct {
		Digest string `json:"containerimage.digest"`
	}
	if err := json.Unmarshal(metadata, &m); err != nil {
		return "", fmt.Errorf("buildctl's metadata: %w", err)
	}
	if !strings.HasPrefix(m.Digest, "sha256:") {
		return "", fmt.Errorf("buildctl's metadata has no image digest: %s", metadata)
	}
	return m.Digest, nil
}

// excerptHead is the line that names the failing Dockerfile line ("Dockerfile:2").
var excerptHead = regexp.MustCompile(`^[^\s:]+:\d+$`)

// errorLines picks BuildKit's own error lines out of buildctl's plain
// progress: the failing step's "ERROR:" line, the Dockerfile excerpt it
// prints under it, and buildctl's final "error: ..." line. Without them, the
// last lines.
func errorLines(progress string) string {
	lines := strings.Split(strings.TrimRight(progress, "\n"), "\n")
	var out []string
	inExcerpt := false
	for _, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case strings.Contains(l, "ERROR:") || strings.HasPrefix(t, "error:"):
			out = append(out, l)
			inExcerpt = false
		case excerptHead.MatchString(t) || strings.HasPrefix(t, "--------------------"):
			out = append(out, l)
			inExcerpt = true
		case inExcerpt && t != "":
			out = append(out, l)
		default:
			inExcerpt = false
		}
	}
	if len(out) == 0 {
		return tail(progress, 10)
	}
	return strings.Join(out, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// subIDCount is the size of the subordinate ID range given to the user (as
// useradd gives by default).
const subIDCount = 65536

// hasRange reports whether an /etc/subuid or /etc/subgid file gives the user
// (by name or ID) a range of at least subIDCount IDs.
func hasRange(file, name string, id int) bool {
	for _, line := range strings.Split(file, "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 || (f[0] != name && f[0] != strconv.Itoa(id)) {
			continue
		}
		if n, err := strconv.Atoi(f[2]); err == nil && n >= subIDCount {
			return true
		}
	}
	return false
}

// freeRange returns the start of a range of count IDs that no line of an
// /etc/subuid or /etc/subgid file uses: 100000 (useradd's first), or past
// the last range given.
func freeRange(file string, count int) int {
	start := 100000
	for _, line := range strings.Split(file, "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 {
			continue
		}
		s, err1 := strconv.Atoi(f[1])
		n, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		if s+n > start && s < start+count {
			start = s + n
		}
	}
	return start
}
