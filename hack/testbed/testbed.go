// Package testbed holds the facts shared by every part of the project's local
// test bed (cluster, registry, images): where things live and which versions
// are pinned. Everything is overridable through environment variables so that
// two checkouts on one machine, or a CI run, can keep apart.
package testbed

import (
	"os"
	"path/filepath"
)

// Pinned versions of what the test bed builds.
const (
	// KubernetesVersion is the k8s.io/kubernetes module version built for the
	// cluster's components and for kubectl.
	KubernetesVersion = "v1.34.4"
	// EtcdVersion is the go.etcd.io/etcd/server/v3 module version built for etcd.
	EtcdVersion = "v3.6.4"
	// BuildKitVersion is the github.com/moby/buildkit module version built
	// for buildkitd and buildctl (hack/buildkit).
	BuildKitVersion = "v0.35.1"
	// RootlessKitVersion is the github.com/rootless-containers/rootlesskit/v2
	// module version built for rootlesskit, which runs buildkitd rootless.
	RootlessKitVersion = "v2.3.6"
	// NodeName is the name of the single node.
	NodeName = "kdev-node"
)

// Getenv returns the environment variable key, or def when it is unset or empty.
func Getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// CacheDir holds what is built once per machine (Kubernetes binaries, etcd,
// root filesystems). It lives outside the work tree. KDEV_CACHE_DIR overrides.
func CacheDir() string { return Getenv("KDEV_CACHE_DIR", "/var/cache/kubectl-dev") }

// StateDir holds a running cluster's state: PKI, data, logs, pid files,
// kubeconfigs, containerd's and the kubelet's roots. KDEV_STATE_DIR overrides.
func StateDir() string { return Getenv("KDEV_STATE_DIR", "/var/lib/kubectl-dev") }

// RunDir holds sockets and runtime state that must not outlive a reboot.
// KDEV_RUN_DIR overrides.
func RunDir() string { return Getenv("KDEV_RUN_DIR", "/run/kubectl-dev") }

// LogDir holds one log file per component.
func LogDir() string { return filepath.Join(StateDir(), "logs") }

// PidDir holds one pid file per process that the test bed started.
func PidDir() string { return filepath.Join(StateDir(), "pids") }

// Kubeconfig is the admin kubeconfig written by `kdev cluster up`.
func Kubeconfig() string { return filepath.Join(StateDir(), "admin.kubeconfig") }

// RegistryAddr is the host:port of the local OCI registry (loopback only).
// KDEV_REGISTRY_ADDR overrides.
func RegistryAddr() string { return Getenv("KDEV_REGISTRY_ADDR", "127.0.0.1:5000") }

// RegistryLinkAddr is where an emulated link (hack/link) in front of the
// local registry listens when a benchmark puts one there: the node's
// containerd knows it as a second plain-HTTP registry, so that a push and
// the node's pull of an image named after it cross the link, as they would
// to a cloud registry. Nothing listens there otherwise.
// KDEV_REGISTRY_LINK_ADDR overrides.
func RegistryLinkAddr() string { return Getenv("KDEV_REGISTRY_LINK_ADDR", "127.0.0.1:5001") }

// ImageRepo is the repository prefix images are pushed under, for example
// "127.0.0.1:5000/kubectl-dev". KDEV_IMAGE_REPO overrides (an external cluster
// gives its own registry there).
func ImageRepo() string { return Getenv("KDEV_IMAGE_REPO", RegistryAddr()+"/kubectl-dev") }

// Image returns the full reference of one of the test bed's images.
func Image(name, tag string) string { return ImageRepo() + "/" + name + ":" + tag }

// PauseImage is the sandbox image containerd is configured with.
func PauseImage() string { return Image("pause", "3.10-kdev") }

// BinDir holds the binaries built for the test bed (kubelet, kube-apiserver,
// etcd, kubectl, ...).
func BinDir() string { return filepath.Join(CacheDir(), "bin") }

// Kubectl is the kubectl built at KubernetesVersion.
func Kubectl() string { return filepath.Join(BinDir(), "kubectl") }
