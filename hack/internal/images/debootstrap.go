package images

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// The Debian root filesystem of the demo-python image, made with debootstrap
// and cached as an image layer. (Nothing to do with pkg/rootfs, which is the
// agent's file access inside a container's root.)
const (
	debianSuite = "bookworm"
	// debianRecipe changes when the way the root filesystem is made or
	// trimmed changes, so that the cached layer is made again.
	debianRecipe = "debootstrap-minbase-trim-v1"
)

// debianPackages are added to the minbase variant.
// rsync is there for `rsync -e ssh` through kubectl devssh, as in an app image
// a developer would rsync to.
var debianPackages = []string{"python3-pyramid", "python3-waitress", "python3-watchdog", "rsync"}

// DebianMirror is where debootstrap fetches packages (KDEV_DEBIAN_MIRROR).
func DebianMirror() string {
	return testbed.Getenv("KDEV_DEBIAN_MIRROR", "http://deb.debian.org/debian")
}

// debianLayerKey names the cached root filesystem layer after everything it is made from.
func debianLayerKey() string {
	pkgs := append([]string(nil), debianPackages...)
	sort.Strings(pkgs)
	sum := sha256.Sum256([]byte(strings.Join([]string{debianRecipe, debianSuite, DebianMirror(), strings.Join(pkgs, ",")}, "\n")))
	// The "rootfs-" prefix names layers already cached on machines: kept.
	return "rootfs-" + debianSuite + "-" + hex.EncodeToString(sum[:8])
}

// skipVirtual leaves out what the container runtime provides: device nodes and
// anything under /dev, /proc and /sys (the directories themselves stay).
func skipVirtual(rel string, d fs.DirEntry) bool {
	for _, p := range []string{"dev/", "proc/", "sys/"} {
		if strings.HasPrefix(rel, p) {
			return true
		}
	}
	return d.Type()&(fs.ModeDevice|fs.ModeCharDevice) != 0
}

// trimDebian removes apt's caches and lists, documentation, logs and other
// files an image does not need.
func trimDebian(root string) error {
	for _, pattern := range []string{
		"var/cache/apt/*", "var/cache/debconf/*-old", "var/lib/apt/lists/*",
		"usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/lintian/*",
		"usr/share/locale/*", "var/log/*", "tmp/*", "var/tmp/*", "root/.*_history",
		"etc/hostname", "etc/machine-id", "var/lib/dbus/machine-id",
	} {
		matches, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			return err
		}
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	// Keep apt usable inside the image, but without its caches.
	return os.MkdirAll(filepath.Join(root, "var/lib/apt/lists/partial"), 0o755)
}

// mountsUnder lists the mount points at or under dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var found []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			found = append(found, mp)
		}
	}
	sort.Slice(found, func(i, j int) bool { return len(found[i]) > len(found[j]) })
	return found, nil
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}
