// Package framework is the e2e harness: it finds or starts a real cluster,
// pushes the test images, gives each test its own namespace, runs the built
// plugins as a user would (through kubectl's plugin discovery) and, when a
// test fails, prints what is needed to understand why (pod descriptions,
// events, container logs).
//
// The cluster is the one in KUBECONFIG when that is set (kind, k3d, minikube
// or a cloud cluster; images then go to KDEV_IMAGE_REPO, which the cluster
// must be able to pull from), else the project's own local cluster, started
// with `kdev cluster up`.
package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// Env is the cluster under test and the tools to drive it.
type Env struct {
	// Root is the repository's root folder.
	Root string
	// BinDir holds the built plugins, devagent and kdev (make build).
	BinDir string
	// Kubeconfig is the path of the kubeconfig the tests use.
	Kubeconfig string
	// Kubectl is the kubectl binary the tests run.
	Kubectl string
	// Local is true when the tests run on the project's own cluster.
	Local bool
	// Client talks to the cluster.
	Client kubernetes.Interface
	// Version is the version the plugins and the agent image were built with.
	Version string
}

// Setup finds or starts the cluster and pushes the images. It is called once
// from TestMain; its output goes to stderr.
func Setup(ctx context.Context) (*Env, error) { return SetupWith(ctx, Options{}) }

// Options change what Setup does.
type Options struct {
	// KeepImages skips building and pushing the test images: the ones
	// already in the registry are used (a benchmark against a running
	// cluster whose agent image must not change under it).
	KeepImages bool
}

// SetupWith is Setup with options.
func SetupWith(ctx context.Context, opts Options) (*Env, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	e := &Env{Root: root, BinDir: filepath.Join(root, "bin"), Version: os.Getenv("KDEV_VERSION")}
	if e.Version == "" {
		e.Version = "v0.0.0-dev"
	}
	for _, b := range []string{"kdev", "devagent", "kubectl-devpatch", "kubectl-devssh", "kubectl-devsync"} {
		if _, err := os.Stat(filepath.Join(e.BinDir, b)); err != nil {
			return nil, fmt.Errorf("%s is not built: run `make build` (or `make e2e`) first", filepath.Join(e.BinDir, b))
		}
	}
	e.Kubeconfig = os.Getenv("KUBECONFIG")
	if e.Kubeconfig == "" {
		e.Local = true
		if err := e.kdev(ctx, "cluster", "up"); err != nil {
			return nil, fmt.Errorf("starting the local cluster: %w", err)
		}
		e.Kubeconfig = testbed.Kubeconfig()
		e.Kubectl = testbed.Kubectl()
	} else if e.Kubectl, err = exec.LookPath("kubectl"); err != nil {
		return nil, fmt.Errorf("KUBECONFIG is set but kubectl is not on PATH: %w", err)
	}
	if !opts.KeepImages {
		if err := e.kdev(ctx, "images", "build", "--version", e.Version); err != nil {
			return nil, fmt.Errorf("building and pushing the test images: %w", err)
		}
	}
	// The plugins are found the way a user's kubectl finds them: on PATH.
	os.Setenv("KUBECONFIG", e.Kubeconfig)
	os.Setenv("PATH", e.BinDir+string(os.PathListSeparator)+filepath.Dir(e.Kubectl)+string(os.PathListSeparator)+os.Getenv("PATH"))
	cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", e.Kubeconfig, err)
	}
	if e.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Env) kdev(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(e.BinDir, "kdev"), args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Dir = e.Root
	return cmd.Run()
}

// Image is the reference of one of the test images.
func (e *Env) Image(name, tag string) string { return testbed.Image(name, tag) }

// AgentImage is the devagent image of the version under test.
func (e *Env) AgentImage() string { return testbed.Image("devagent", e.Version) }

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/kubectl-dev/kubectl-dev\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("the repository's go.mod is not above %s", dir)
		}
		dir = parent
	}
}

// Namespace creates a namespace of the test's own, deleted when the test
// ends; when the test failed, its pods, events and logs are printed first.
func (e *Env) Namespace(t *testing.T) string {
	t.Helper()
	name := "e2e-" + strings.ToLower(rand.String(6))
	ctx := context.Background()
	_, err := e.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: name, Labels: map[string]string{"kubectl-dev.io/e2e": "true"},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	// A new namespace has no default ServiceAccount for a moment; pods wait for it.
	e.WaitFor(t, "ServiceAccount default in namespace "+name, time.Minute, func(ctx context.Context) (bool, error) {
		_, err := e.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	t.Cleanup(func() {
		if t.Failed() {
			e.Dump(t, name)
		}
		if os.Getenv("KDEV_E2E_KEEP") != "" {
			t.Logf("keeping namespace %s (KDEV_E2E_KEEP is set)", name)
			return
		}
		_ = e.Client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// Dump prints what a person debugging a failed test looks at first.
func (e *Env) Dump(t *testing.T, ns string) {
	t.Helper()
	for _, args := range [][]string{
		{"get", "all", "-o", "wide"},
		{"describe", "pods"},
		{"get", "events", "--sort-by=.lastTimestamp"},
		{"logs", "--all-containers", "--prefix", "--tail=100", "-l", "kubectl-dev.io/e2e-app"},
	} {
		out, _ := e.KubectlRun(context.Background(), append([]string{"-n", ns}, args...)...)
		t.Logf("kubectl -n %s %s:\n%s", ns, strings.Join(args, " "), out)
	}
}

// Result is the outcome of a command.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
}

// Run runs a command with the test's environment and returns its outcome; a
// non-zero exit is not an error (tests check ExitCode), failing to start is.
func (e *Env) Run(ctx context.Context, stdin []byte, name string, args ...string) (Result, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.ExitCode = ee.ExitCode()
		return r, nil
	}
	return r, err
}

// KubectlRun runs kubectl and returns its combined output and any error.
func (e *Env) KubectlRun(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, e.Kubectl, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Kubectl runs kubectl (plugins included, as `kubectl devpatch ...`) and
// fails the test when it does not exit 0.
func (e *Env) KubectlT(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := e.KubectlRun(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// WaitFor polls cond until it returns true, fails the test on an error or
// after timeout. It is the only way tests wait: on conditions, not on time.
func (e *Env) WaitFor(t *testing.T, what string, timeout time.Duration, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil {
			last = err
			return false, nil //nolint:nilerr // a transient error: kept in last for the failure message, and retried until the deadline
		}
		return ok, nil
	})
	if err != nil {
		if last != nil {
			t.Fatalf("waiting for %s: %v (last error: %v)", what, err, last)
		}
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
