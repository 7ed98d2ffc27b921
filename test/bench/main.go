//go:build linux

// Command bench measures kubectl devsync on the local cluster (make bench)
// against the baselines the issue names, in the same run, and writes
// docs/benchmarks.md:
//
//   - edit-to-visible latency over N edits of a watched tree (local write
//     until the agent reads the new content in the app container);
//   - initial sync of 10,000 small files (about 50 MB) into demo-python,
//     against "kubectl cp" and "tar c | kubectl exec -i -- tar x";
//   - re-sync of one changed file in that tree by a new connection;
//   - one big file, against the raw stream of a port-forward to the same
//     pod (and of kubectl exec -i);
//   - edit-to-new-process-serving with devpatch --supervise and
//     devsync --restart;
//   - the memory of the devsync client watching a 100,000-file tree.
//
// One file per benchmark: edit.go (latency), initial.go, bigfile.go,
// restart.go, devssh.go, watchmem.go; session.go starts devsync sessions,
// report.go writes the results; main.go holds the flags and runs them.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-dev/kubectl-dev/hack/link"
	"github.com/kubectl-dev/kubectl-dev/test/e2e/framework"
)

var (
	out     = flag.String("out", "docs/benchmarks.md", "where to write the results")
	edits   = flag.Int("edits", 50, "edits for the latency benchmark")
	files   = flag.Int("files", 10000, "files of the initial-sync benchmark")
	size    = flag.Int("size", 5000, "bytes per file of the initial-sync benchmark")
	restart = flag.Int("restarts", 5, "edits for the --restart benchmark")
	rounds  = flag.Int("rounds", 7, "runs of each initial-sync and big-file method (the median is reported; the machine may be shared)")
	only    = flag.String("only", "", "run only this benchmark: latency, initial, big, restart, loop, devssh or watchmem")
	profile = flag.String("profile", "loopback", "the link to the API server: loopback (none), or an emulated link of hack/link: lan, wan or far")
	bigMB   = flag.Int("big", 200, "size in MB of the one-big-file benchmark")
	images  = flag.Bool("images", true, "build and push the test images first (kdev images build, as the e2e tests do); with --images=false the images already in the registry are used")
	watchN  = flag.Int("watch-files", 100000, "files of the watched tree of the client-memory benchmark (100 per directory)")
	// sourceTree: a tree of real source files, which compress (the random
	// tree is the worst case). GOROOT/src is on every machine that builds
	// the project; the benchmark runs where it was built (go run), so the
	// build's GOROOT is there.
	sourceTree = flag.String("source-tree", filepath.Join(runtime.GOROOT(), "src"), //nolint:staticcheck // SA1019: see above
		"real source files for a second initial-sync set (--files of them, at most 64 KiB each, in path order); empty: none")
)

type bench struct {
	env *framework.Env
	ns  string
	// link is the emulated link every kubectl and plugin run crosses (nil
	// on loopback); direct is the kubeconfig without it, for the probes
	// that observe the pod.
	link   *link.Link
	direct string
}

func (b *bench) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, "bench:", line)
}

func main() {
	flag.Parse()
	ctx := context.Background()
	env, err := framework.SetupWith(ctx, framework.Options{KeepImages: !*images})
	if err != nil {
		fail(err)
	}
	b := &bench{env: env, ns: fmt.Sprintf("bench-%d", time.Now().Unix()), direct: env.Kubeconfig}
	if err := b.setLink(); err != nil {
		fail(err)
	}
	if b.link != nil {
		defer b.link.Close()
	}
	if err := b.run(ctx); err != nil {
		fail(err)
	}
}

// setLink puts the emulated link of --profile in front of the API server:
// from here on kubectl, the plugins and the bench's own port-forward
// streams go through it. The kubeconfig through it lives beside the
// cluster's (the plugins' keys are found beside the kubeconfig). Flags
// that were not given take the profile's defaults: fewer rounds and a
// smaller big file where the link is slow.
func (b *bench) setLink() error {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *profile == "loopback" {
		return nil
	}
	p, err := link.Lookup(*profile)
	if err != nil {
		return fmt.Errorf("--profile: %w", err)
	}
	up, err := link.Upstream(b.env.Kubeconfig)
	if err != nil {
		return err
	}
	if b.link, err = link.Start(p, "127.0.0.1:0", up); err != nil {
		return err
	}
	kc := filepath.Join(filepath.Dir(b.env.Kubeconfig), "bench-"+p.Name+".kubeconfig")
	if err := link.WriteKubeconfig(b.env.Kubeconfig, kc, b.link.Addr()); err != nil {
		return err
	}
	b.env.Kubeconfig = kc
	os.Setenv("KUBECONFIG", kc)
	if !set["rounds"] {
		*rounds = 3
	}
	if !set["big"] && p.Name == "far" {
		*bigMB = 50
	}
	b.logf("link %s (%s) on %s; %d rounds, big file %d MB", p.Name, p.Summary, b.link.Addr(), *rounds, *bigMB)
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func (b *bench) kubectl(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, b.env.Kubectl, args...)
	cmd.Stdin = stdin
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return o.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, e.String())
	}
	return o.String(), nil
}

func (b *bench) run(ctx context.Context) error {
	cs := b.env.Client
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b.ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	defer func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), b.ns, metav1.DeleteOptions{}) }()
	d := b.env.DemoDeployment("demo", b.env.Image("demo-python", "latest"))
	d.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	if _, err := cs.AppsV1().Deployments(b.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := b.kubectl(ctx, nil, "devpatch", "-n", b.ns, "deploy/demo", "--supervise", "--image", b.env.AgentImage()); err != nil {
		return err
	}
	res := &results{}
	pod, err := b.pod(ctx)
	if err != nil {
		return err
	}
	if *only == "" || *only == "latency" {
		if err := b.latency(ctx, res); err != nil {
			return err
		}
	}
	if *only == "" || *only == "initial" {
		if err := b.initialSync(ctx, pod, res); err != nil {
			return err
		}
	}
	if *only == "" || *only == "big" {
		if err := b.bigFile(ctx, pod, res); err != nil {
			return err
		}
	}
	// Restarts and the client's memory do not depend on the link: they
	// run on loopback only.
	if (*only == "" && b.link == nil) || *only == "restart" {
		if err := b.restarts(ctx, pod, res); err != nil {
			return err
		}
	}
	// The basic loop against ours: on loopback and wan (the two
	// figures); --only loop runs it on any profile.
	if (*only == "" && (b.link == nil || b.link.Profile.Name == "wan")) || *only == "loop" {
		if err := b.loop(ctx, pod, res); err != nil {
			return err
		}
	}
	if *only == "" || *only == "devssh" {
		if err := b.devssh(ctx, pod, res); err != nil {
			return err
		}
	}
	// Last: deleting its 100,000 files in the pod slows file creation
	// there for a while (see initialSync).
	if (*only == "" && b.link == nil) || *only == "watchmem" {
		if err := b.watchMem(ctx, pod, res); err != nil {
			return err
		}
	}
	res.profile, res.link, res.onlyLoop = *profile, b.link, *only == "loop"
	return res.write(*out)
}

func (b *bench) pod(ctx context.Context) (*corev1.Pod, error) {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		pods, err := b.env.Client.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=demo"})
		if err == nil {
			for i := range pods.Items {
				p := &pods.Items[i]
				ready := 0
				for _, st := range p.Status.ContainerStatuses {
					if st.Ready {
						ready++
					}
				}
				if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && ready == len(p.Status.ContainerStatuses) && ready >= 2 {
					return p, nil
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return nil, fmt.Errorf("no ready pod of deploy/demo in %s", b.ns)
}

func timeit(b *bench, name string, fn func() error) (time.Duration, error) {
	start := time.Now()
	if err := fn(); err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	d := time.Since(start)
	b.logf("%s: %s", name, d.Round(time.Millisecond))
	return d, nil
}

// bigFile syncs one large incompressible file and compares it with the raw
// throughput of a port-forward stream to the same pod: the file written,
// through pkg/portforward (the API server's pods/portforward, as devsync's
// own connection goes), to a TCP sink in the app container; and with the
// stream of "kubectl exec -i -- cat > /dev/null". The three run interleaved
// for --rounds rounds and the medians are reported. It records the peak
// RSS of the devsync client and of the agent.
// settle writes the machine's dirty pages back before a timed run, so that
// no run pays for writing back what the runs before it wrote (the local
// cluster's node disk is on this machine; every method writes tens of MB).
func settle() { syscall.Sync() }
