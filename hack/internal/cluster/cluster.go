//go:build linux

// Package cluster runs the project's real single-node Kubernetes cluster:
// containerd, etcd, kube-apiserver, kube-controller-manager, kube-scheduler
// and a kubelet, built from pinned sources and started as detached processes
// with state under testbed.StateDir() and testbed.RunDir().
package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubectl-dev/kubectl-dev/hack/internal/images"
	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// Packages are the Debian packages the test bed needs.
var Packages = []string{"containerd", "runc", "containernetworking-plugins", "iptables", "conntrack",
	"socat", "busybox-static", "debootstrap", "openssh-client", "rsync", "iproute2", "e2fsprogs", "mount"}

const sysPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// EnsurePackages installs the missing Debian packages.
func (c Config) EnsurePackages(ctx context.Context) error {
	var missing []string
	for _, p := range Packages {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${db:Status-Status}", p).Output()
		if err != nil || strings.TrimSpace(string(out)) != "installed" {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(c.Out, "installing Debian packages: %s ...\n", strings.Join(missing, " "))
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"update"}, append([]string{"install", "-y", "--no-install-recommends"}, missing...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %v\n%s", args[0], err, tail(string(out), 30))
		}
	}
	return nil
}

func (c Config) env() []string {
	env := []string{"PATH=" + sysPath}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PATH=") && !strings.HasPrefix(e, "NOTIFY_SOCKET=") && !strings.HasPrefix(e, "KUBECONFIG=") {
			env = append(env, e)
		}
	}
	return env
}

func (c Config) kubeconfig(certName, user string) *clientcmdapi.Config {
	p := c.PKI()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kdev"] = &clientcmdapi.Cluster{Server: c.APIServerURL(), CertificateAuthority: p.CACert()}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificate: p.Cert(certName), ClientKey: p.Key(certName)}
	kc.Contexts["kdev"] = &clientcmdapi.Context{Cluster: "kdev", AuthInfo: user}
	kc.CurrentContext = "kdev"
	return kc
}

// writeKubeconfig writes kc with the files' contents embedded and reports
// whether the file changed.
func writeKubeconfig(kc *clientcmdapi.Config, file string) (bool, error) {
	if err := clientcmdapi.FlattenConfig(kc); err != nil {
		return false, err
	}
	b, err := clientcmd.Write(*kc)
	if err != nil {
		return false, err
	}
	return writeIfChanged(file, b, 0o600)
}

func writeIfChanged(file string, data []byte, mode os.FileMode) (bool, error) {
	if old, err := os.ReadFile(file); err == nil && string(old) == string(data) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return false, err
	}
	return true, writeFileAtomic(file, data, mode)
}

// writeConfigs writes every configuration file and returns the names of the
// components whose configuration changed.
func (c Config) writeConfigs() (map[string]bool, error) {
	changed := map[string]bool{}
	specs, err := c.CertSpecs()
	if err != nil {
		return nil, err
	}
	made, err := c.PKI().Ensure(specs, time.Now())
	if err != nil {
		return nil, fmt.Errorf("PKI: %w", err)
	}
	if len(made) > 0 {
		fmt.Fprintf(c.Out, "generated certificates: %s\n", strings.Join(made, " "))
		for _, n := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"} {
			changed[n] = true
		}
	}
	cni, err := c.CNIConfig()
	if err != nil {
		return nil, err
	}
	resolv := "/etc/resolv.conf"
	kubelet, err := c.KubeletConfig(resolv)
	if err != nil {
		return nil, err
	}
	files := []struct {
		file, data, comp string
	}{
		{c.Conf("containerd.toml"), c.ContainerdConfig(), "containerd"},
		{filepath.Join(c.CNIConfDir(), "10-kdev.conflist"), cni, "containerd"},
		{c.Conf("kubelet.yaml"), kubelet, "kubelet"},
	}
	for _, f := range files {
		ch, err := writeIfChanged(f.file, []byte(f.data), 0o644)
		if err != nil {
			return nil, err
		}
		changed[f.comp] = changed[f.comp] || ch
	}
	kcs := []struct {
		cert, user, file, comp string
	}{
		{"controller-manager", "system:kube-controller-manager", c.Conf("controller-manager.kubeconfig"), "kube-controller-manager"},
		{"scheduler", "system:kube-scheduler", c.Conf("scheduler.kubeconfig"), "kube-scheduler"},
		{"kubelet-client", "system:node:" + c.NodeName, c.Conf("kubelet.kubeconfig"), "kubelet"},
		{"admin", "kubernetes-admin", c.Kubeconfig, ""},
	}
	for _, k := range kcs {
		ch, err := writeKubeconfig(c.kubeconfig(k.cert, k.user), k.file)
		if err != nil {
			return nil, err
		}
		if k.comp != "" {
			changed[k.comp] = changed[k.comp] || ch
		}
	}
	if err := c.ensureNodeDisk(); err != nil {
		return nil, err
	}
	for _, d := range []string{c.EtcdDataDir(), c.KubeletRoot(), c.PodLogsDir(), c.CNIDataDir(), c.ContainerdRoot(), c.RunDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	_ = os.Chmod(c.EtcdDataDir(), 0o700)
	return changed, nil
}

// state is what is known about one component.
type state struct {
	comp    Component
	pid     PidInfo
	hasPid  bool
	alive   bool
	sameCmd bool
	health  error
}

func (c Config) inspect(ctx context.Context, comp Component) state {
	s := state{comp: comp}
	p, err := readPidFile(c.PidFile(comp.Name))
	if err == nil {
		s.pid, s.hasPid = p, true
		s.alive = p.Alive() && matchesCmdline(p)
		s.sameCmd = slices.Equal(p.Args, comp.Args)
	}
	if s.alive {
		s.health = c.Health(ctx, comp.Name)
	} else {
		s.health = errors.New("not running")
	}
	return s
}

// matchesCmdline reports whether the live process has the executable we started.
func matchesCmdline(p PidInfo) bool {
	cl := procCmdline(p.Pid)
	return len(cl) > 0 && len(p.Args) > 0 && cl[0] == p.Args[0]
}

// Up brings the cluster up, or repairs it, or says it is up already.
func (c Config) Up(ctx context.Context) (err error) {
	start := time.Now()
	if err := c.EnsurePackages(ctx); err != nil {
		return err
	}
	if err := c.EnsureBinaries(ctx); err != nil {
		return err
	}
	changed, err := c.writeConfigs()
	if err != nil {
		return err
	}
	comps := c.Components()
	// The registry stands alone. Of the others, the first that is not running
	// healthily with the wanted command line and configuration is restarted
	// together with all after it (they depend on it).
	ok := func(comp Component) bool {
		s := c.inspect(ctx, comp)
		return s.alive && s.sameCmd && !changed[comp.Name] && s.health == nil
	}
	registryOK := ok(comps[0])
	from := len(comps)
	for i := 1; i < len(comps); i++ {
		if !ok(comps[i]) {
			from = i
			break
		}
	}
	if registryOK && from == len(comps) {
		if err := c.waitReady(ctx, time.Time{}, 30*time.Second); err != nil {
			return fmt.Errorf("all processes are healthy but: %w", err)
		}
		fmt.Fprintf(c.Out, "cluster is up and healthy (nothing to do)\n")
		c.printEnv()
		return nil
	}
	toStart := slices.Clone(comps[from:])
	if !registryOK {
		toStart = append([]Component{comps[0]}, toStart...)
	}
	// Stop what has to restart (later ones first) and clear leftovers.
	for i := len(toStart) - 1; i >= 0; i-- {
		if err := c.stopComponent(toStart[i]); err != nil {
			return err
		}
	}
	// Fail before starting anything when a port is taken by someone else.
	for _, comp := range toStart {
		for _, port := range comp.Ports {
			if h := portHolder(port); h != "" {
				return fmt.Errorf("cannot start %s: port %d is in use by %s", comp.Name, port, h)
			}
		}
	}
	if from <= c.index("containerd") {
		if err := c.clearRuntimeLeftovers(); err != nil {
			return err
		}
	}
	if from < len(comps) {
		if err := c.recordHost(); err != nil {
			return err
		}
		if err := c.ensureBridge(); err != nil {
			return err
		}
	}
	var started []Component
	defer func() {
		if err != nil && !c.KeepOnFailure && len(started) > 0 {
			fmt.Fprintf(c.Out, "stopping what this run started (use --keep-on-failure to keep it) ...\n")
			for i := len(started) - 1; i >= 0; i-- {
				_ = c.stopComponent(started[i])
			}
			if slices.ContainsFunc(started, func(cp Component) bool { return cp.Name == "containerd" }) {
				_ = c.clearRuntimeLeftovers()
				_ = deleteBridge(c.Bridge)
			}
		}
	}()
	kubeletStart := time.Now()
	for _, comp := range toStart {
		if comp.Name == "kubelet" {
			kubeletStart = time.Now()
		}
		if err := c.startComponent(ctx, comp); err != nil {
			if _, statErr := os.Stat(c.PidFile(comp.Name)); statErr == nil {
				started = append(started, comp)
			}
			return err
		}
		started = append(started, comp)
		if comp.Name == "registry" {
			fmt.Fprintf(c.Out, "pushing %s ...\n", c.PauseImage)
			if err := images.Build(ctx, c.Out, "pause"); err != nil {
				return fmt.Errorf("pause image: %w", err)
			}
		}
	}
	if err := c.waitReady(ctx, kubeletStart, 3*time.Minute); err != nil {
		for _, n := range []string{"kubelet", "kube-controller-manager"} {
			fmt.Fprintf(c.Out, "---- last lines of %s\n%s\n", c.LogFile(n), tailFile(c.LogFile(n), 30))
		}
		return err
	}
	fmt.Fprintf(c.Out, "cluster is up (%s)\n", time.Since(start).Round(100*time.Millisecond))
	c.printEnv()
	return nil
}

func (c Config) index(name string) int {
	return slices.IndexFunc(c.Components(), func(cp Component) bool { return cp.Name == name })
}

func (c Config) printEnv() {
	fmt.Fprintf(c.Out, "  export KUBECONFIG=%s\n  export PATH=%s:$PATH\n", c.Kubeconfig, c.BinDir())
}

// Env prints the shell lines that point kubectl at the cluster.
func (c Config) Env() {
	// The agent image the plugins patch in: the one `kdev images build`
	// pushed to the local registry (the release's default is not reachable).
	agent := testbed.Image("devagent", testbed.Getenv("KDEV_VERSION", "v0.0.0-dev"))
	fmt.Fprintf(c.Out, "export KUBECONFIG=%s\nexport PATH=%s:$PATH\nexport KUBECTL_DEV_AGENT_IMAGE=%s\n", c.Kubeconfig, c.BinDir(), agent)
	// What docs/tutorial.md builds with: the registry the cluster pulls
	// from, and a Python base image in it (Docker Hub is not reachable).
	fmt.Fprintf(c.Out, "export REGISTRY=%s\nexport PYTHON_BASE=%s\n", testbed.ImageRepo(), testbed.Image("debian-python-base", "bookworm"))
}

func (c Config) startComponent(ctx context.Context, comp Component) error {
	for _, port := range comp.Ports {
		if h := portHolder(port); h != "" {
			return fmt.Errorf("cannot start %s: port %d is in use by %s", comp.Name, port, h)
		}
	}
	if comp.Name == "containerd" {
		if err := os.MkdirAll(c.ContainerdState(), 0o711); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.Out, "starting %s ...", comp.Name)
	t0 := time.Now()
	info, exited, err := startDetached(comp.Args, c.LogFile(comp.Name), c.PidFile(comp.Name), c.env())
	if err != nil {
		fmt.Fprintln(c.Out)
		return fmt.Errorf("start %s: %w", comp.Name, err)
	}
	timeout := 60 * time.Second
	if comp.Name == "kube-apiserver" {
		timeout = 2 * time.Minute
	}
	err = poll(ctx, timeout, 100*time.Millisecond, func(ctx context.Context) error { return c.Health(ctx, comp.Name) },
		func() error {
			select {
			case <-exited:
				return fmt.Errorf("%s (pid %d) exited", comp.Name, info.Pid)
			default:
				return nil
			}
		})
	if err != nil {
		fmt.Fprintln(c.Out, " failed")
		fmt.Fprintf(c.Out, "---- last lines of %s\n%s\n----\n", c.LogFile(comp.Name), tailFile(c.LogFile(comp.Name), 30))
		return fmt.Errorf("%s did not become healthy: %w", comp.Name, err)
	}
	fmt.Fprintf(c.Out, " ok (pid %d, %s)\n", info.Pid, time.Since(t0).Round(10*time.Millisecond))
	return nil
}

// stopComponent stops the process of the pid file (if it is still ours) and
// removes the pid file. Stopping containerd kills our pods' processes first.
func (c Config) stopComponent(comp Component) error {
	file := c.PidFile(comp.Name)
	p, err := readPidFile(file)
	if err != nil && !os.IsNotExist(err) {
		fmt.Fprintf(c.Out, "ignoring unreadable pid file %s: %v\n", file, err)
	}
	if comp.Name == "containerd" {
		c.killContainers()
	}
	if err == nil && p.Alive() && matchesCmdline(p) {
		fmt.Fprintf(c.Out, "stopping %s (pid %d)\n", comp.Name, p.Pid)
		grace := 15 * time.Second
		if err := stopPid(p, grace); err != nil {
			return fmt.Errorf("stop %s: %w", comp.Name, err)
		}
	} else if err == nil && !p.Alive() && !waitExited(p, 10*time.Second) {
		// It was exiting on its own (stopped by someone else): its last
		// threads still hold its files, the listening ports among them.
		return fmt.Errorf("stop %s: pid %d is still exiting after 10s", comp.Name, p.Pid)
	}
	if comp.Name == "containerd" {
		c.killContainers() // shims whose containers were gone stay until containerd deletes them
	}
	if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// killContainers kills the processes of our containers and their shims: the
// shims are found by our containerd socket on their command line.
func (c Config) killContainers() {
	shims := shimPids(c.ContainerdSocket())
	if len(shims) == 0 {
		return
	}
	if kids := descendants(shims); len(kids) > 0 {
		fmt.Fprintf(c.Out, "killing %d container processes\n", len(kids))
		killAll(kids)
	}
	killAll(shims)
}

// clearRuntimeLeftovers removes what a crashed or stopped containerd and
// kubelet leave behind; our containerd and kubelet must not run.
func (c Config) clearRuntimeLeftovers() error {
	c.killContainers()
	if err := unmountUnder(c.KubeletRoot(), c.RunDir, c.ContainerdRoot()); err != nil {
		return err
	}
	if gone := removeStaleCNINetns(); len(gone) > 0 {
		fmt.Fprintf(c.Out, "removed stale network namespaces: %s\n", strings.Join(gone, " "))
	}
	removeEmptyCgroups()
	return nil
}

// Down stops everything and removes the state (not the cache).
func (c Config) Down(ctx context.Context) error {
	comps := c.Components()
	var errs []error
	for i := len(comps) - 1; i >= 0; i-- {
		if err := c.stopComponent(comps[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	c.killContainers()
	if err := unmountUnder(c.StateDir, c.RunDir); err != nil {
		return err
	}
	if gone := removeStaleCNINetns(); len(gone) > 0 {
		fmt.Fprintf(c.Out, "removed network namespaces: %s\n", strings.Join(gone, " "))
	}
	if err := deleteBridge(c.Bridge); err != nil {
		return err
	}
	if n := removeIptablesRules(c.Bridge, c.PodCIDR); n > 0 {
		fmt.Fprintf(c.Out, "removed %d iptables rules\n", n)
	}
	removeEmptyCgroups()
	removePodLogLinks(c.PodLogsDir())
	c.restoreHost()
	for _, d := range []string{c.RunDir, c.StateDir} {
		if err := removeAllNoMounts(d); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.Out, "cluster is down\n")
	return nil
}

// removeAllNoMounts removes dir unless something is still mounted below it.
func removeAllNoMounts(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	left := mountsUnder(f, dir)
	f.Close()
	if len(left) > 0 {
		return fmt.Errorf("not removing %s: still mounted: %s", dir, strings.Join(left, ", "))
	}
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	return nil
}

// Status prints a table of the components and returns an error when the
// cluster is not healthy.
func (c Config) Status(ctx context.Context) error {
	tw := tabwriter.NewWriter(c.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tPID\tPROCESS\tHEALTH")
	bad := 0
	var dead []string
	for _, comp := range c.Components() {
		s := c.inspect(ctx, comp)
		pid, proc := "-", "absent"
		if s.hasPid {
			pid = fmt.Sprint(s.pid.Pid)
			proc = "dead"
			if s.alive {
				proc = "running"
			}
		}
		health := "ok"
		if s.health != nil {
			health = s.health.Error()
			bad++
			if s.hasPid && !s.alive {
				dead = append(dead, comp.Name)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", comp.Name, pid, proc, health)
	}
	node := "-"
	if bad == 0 {
		if err := c.nodeReady(ctx); err != nil {
			node = err.Error()
			bad++
		} else {
			node = "Ready"
		}
	}
	fmt.Fprintf(tw, "node %s\t\t\t%s\n", c.NodeName, node)
	tw.Flush()
	for _, n := range dead {
		fmt.Fprintf(c.Out, "---- last lines of %s\n%s\n", c.LogFile(n), clipLines(tailFile(c.LogFile(n), 15), 240))
	}
	if bad > 0 {
		return fmt.Errorf("cluster is not healthy")
	}
	return nil
}

func (c Config) client() (*kubernetes.Clientset, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.Timeout = 5 * time.Second
	return kubernetes.NewForConfig(rc)
}

func (c Config) nodeReady(ctx context.Context) error { return c.nodeReadySince(ctx, time.Time{}) }

// nodeReadySince also requires a Ready heartbeat at or after since (a
// restarted kubelet must have reported).
func (c Config) nodeReadySince(ctx context.Context, since time.Time) error {
	cs, err := c.client()
	if err != nil {
		return err
	}
	n, err := cs.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			if cond.Status == corev1.ConditionTrue {
				if cond.LastHeartbeatTime.Time.Before(since.Truncate(time.Second)) {
					return errors.New("node Ready status is from before the kubelet started")
				}
				return nil
			}
			return fmt.Errorf("node not ready: %s: %s", cond.Reason, cond.Message)
		}
	}
	return errors.New("node has no Ready condition yet")
}

// waitReady waits until the node is Ready and the default ServiceAccount exists.
func (c Config) waitReady(ctx context.Context, since time.Time, timeout time.Duration) error {
	cs, err := c.client()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Out, "waiting for node %s to be Ready and ServiceAccount default/default ...", c.NodeName)
	t0 := time.Now()
	err = poll(ctx, timeout, 250*time.Millisecond, func(ctx context.Context) error {
		if err := c.nodeReadySince(ctx, since); err != nil {
			return err
		}
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return errors.New("ServiceAccount default/default does not exist yet")
		}
		return err
	}, nil)
	if err != nil {
		fmt.Fprintln(c.Out, " failed")
		return err
	}
	fmt.Fprintf(c.Out, " ok (%s)\n", time.Since(t0).Round(10*time.Millisecond))
	return nil
}

// clipLines shortens each line of s to at most n bytes.
func clipLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if len(l) > n {
			lines[i] = l[:n] + " ..."
		}
	}
	return strings.Join(lines, "\n")
}
