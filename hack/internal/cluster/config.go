//go:build linux

package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

// Config is everything the cluster engine needs; Default fills it from testbed.
type Config struct {
	CacheDir, StateDir, RunDir string
	LogDir, PidDir             string
	Kubeconfig                 string

	NodeName    string
	KubeVersion string
	EtcdVersion string

	APIServerPort  int
	EtcdClientPort int
	EtcdPeerPort   int
	ServiceCIDR    string
	PodCIDR        string
	Bridge         string

	RegistryAddr string
	// RegistryLinkAddr is the registry through an emulated link
	// (testbed.RegistryLinkAddr): a second plain-HTTP mirror.
	RegistryLinkAddr string
	PauseImage       string

	// Kdev is the executable that serves the registry (`Kdev registry serve`).
	Kdev string
	// KeepOnFailure leaves what `up` started running when a later step fails.
	KeepOnFailure bool
	// Out receives progress lines.
	Out io.Writer
}

// Default returns the configuration from testbed's shared paths and versions.
func Default() Config {
	exe, _ := os.Executable()
	return Config{
		CacheDir:         testbed.CacheDir(),
		StateDir:         testbed.StateDir(),
		RunDir:           testbed.RunDir(),
		LogDir:           testbed.LogDir(),
		PidDir:           testbed.PidDir(),
		Kubeconfig:       testbed.Kubeconfig(),
		NodeName:         testbed.NodeName,
		KubeVersion:      testbed.KubernetesVersion,
		EtcdVersion:      testbed.EtcdVersion,
		APIServerPort:    6443,
		EtcdClientPort:   23790,
		EtcdPeerPort:     23800,
		ServiceCIDR:      "10.96.0.0/16",
		PodCIDR:          "10.244.0.0/24",
		Bridge:           "kdev0",
		RegistryAddr:     testbed.RegistryAddr(),
		RegistryLinkAddr: testbed.RegistryLinkAddr(),
		PauseImage:       testbed.PauseImage(),
		Kdev:             exe,
		Out:              os.Stdout,
	}
}

// Paths derived from the configuration.
func (c Config) BinDir() string          { return filepath.Join(c.CacheDir, "bin") }
func (c Config) Bin(name string) string  { return filepath.Join(c.BinDir(), name) }
func (c Config) PKI() PKI                { return PKI{Dir: filepath.Join(c.StateDir, "pki")} }
func (c Config) ConfDir() string         { return filepath.Join(c.StateDir, "config") }
func (c Config) Conf(name string) string { return filepath.Join(c.ConfDir(), name) }
func (c Config) ContainerdRoot() string  { return filepath.Join(c.NodeDir(), "containerd") }
func (c Config) ContainerdState() string { return filepath.Join(c.RunDir, "containerd") }
func (c Config) ContainerdSocket() string {
	return filepath.Join(c.ContainerdState(), "containerd.sock")
}
func (c Config) RuncRoot() string           { return filepath.Join(c.RunDir, "runc") }
func (c Config) CNIConfDir() string         { return filepath.Join(c.StateDir, "cni", "net.d") }
func (c Config) CNIDataDir() string         { return filepath.Join(c.StateDir, "cni", "networks") }
func (c Config) EtcdDataDir() string        { return filepath.Join(c.StateDir, "etcd") }
func (c Config) KubeletRoot() string        { return filepath.Join(c.NodeDir(), "kubelet") }
func (c Config) PodLogsDir() string         { return filepath.Join(c.StateDir, "pod-logs") }
func (c Config) LogFile(name string) string { return filepath.Join(c.LogDir, name+".log") }
func (c Config) PidFile(name string) string { return filepath.Join(c.PidDir, name+".pid") }
func (c Config) APIServerURL() string {
	return "https://127.0.0.1:" + strconv.Itoa(c.APIServerPort)
}
func (c Config) EtcdURL() string { return "https://127.0.0.1:" + strconv.Itoa(c.EtcdClientPort) }

// FirstServiceIP is the ClusterIP of the `kubernetes` Service.
func (c Config) FirstServiceIP() (net.IP, error) {
	_, n, err := net.ParseCIDR(c.ServiceCIDR)
	if err != nil {
		return nil, err
	}
	ip := n.IP.To4()
	if ip == nil {
		return nil, fmt.Errorf("service CIDR %s: only IPv4 is supported", c.ServiceCIDR)
	}
	first := make(net.IP, 4)
	copy(first, ip)
	first[3]++
	return first, nil
}

// CertSpecs lists the certificates of the cluster.
func (c Config) CertSpecs() ([]CertSpec, error) {
	svc, err := c.FirstServiceIP()
	if err != nil {
		return nil, err
	}
	nodeIP, _, err := c.NodeIP()
	if err != nil {
		return nil, err
	}
	lo := net.ParseIP("127.0.0.1")
	return []CertSpec{
		{Name: "apiserver", CN: "kube-apiserver", Server: true,
			DNS: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
			IPs: []net.IP{lo, svc}},
		{Name: "apiserver-kubelet-client", CN: "kube-apiserver-kubelet-client", Orgs: []string{"system:masters"}, Client: true},
		{Name: "apiserver-etcd-client", CN: "kube-apiserver-etcd-client", Client: true},
		{Name: "etcd-server", CN: "etcd", Server: true, Client: true, DNS: []string{"localhost"}, IPs: []net.IP{lo}},
		{Name: "admin", CN: "kubernetes-admin", Orgs: []string{"system:masters"}, Client: true},
		{Name: "controller-manager", CN: "system:kube-controller-manager", Client: true},
		{Name: "scheduler", CN: "system:kube-scheduler", Client: true},
		{Name: "kubelet-client", CN: "system:node:" + c.NodeName, Orgs: []string{"system:nodes"}, Client: true},
		{Name: "kubelet-serving", CN: c.NodeName, Server: true, DNS: []string{c.NodeName, "localhost"}, IPs: []net.IP{lo, nodeIP}},
	}, nil
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	b, _ := json.Marshal(s) // JSON string escapes are valid TOML basic-string escapes
	return string(b)
}

// ContainerdConfig renders containerd's configuration (config version 2).
func (c Config) ContainerdConfig() string {
	q := tomlString
	return fmt.Sprintf(`# Generated by kdev cluster up; do not edit.
version = 2
root = %s
state = %s
oom_score = 0

[grpc]
  address = %s

[ttrpc]
  address = ""

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %s

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %s
  restrict_oom_score_adj = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = %s
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %s
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry.mirrors.%s]
    endpoint = [%s]

  [plugins."io.containerd.grpc.v1.cri".registry.mirrors.%s]
    endpoint = [%s]
`, q(c.ContainerdRoot()), q(c.ContainerdState()), q(c.ContainerdSocket()),
		q(filepath.Join(c.ContainerdRoot(), "opt")), q(c.PauseImage), q(c.RuncRoot()),
		q(c.CNIConfDir()), q(c.RegistryAddr), q("http://"+c.RegistryAddr), q(c.RegistryLinkAddr), q("http://"+c.RegistryLinkAddr))
}

// CNIConfig renders the CNI network list: a bridge of our own with
// host-local IPAM and no masquerading, plus loopback.
func (c Config) CNIConfig() (string, error) {
	_, n, err := net.ParseCIDR(c.PodCIDR)
	if err != nil {
		return "", fmt.Errorf("pod CIDR: %w", err)
	}
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "kdev",
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      c.Bridge,
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": c.CNIDataDir(),
					"ranges":  []any{[]any{map[string]any{"subnet": n.String()}}},
					"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "loopback"},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	return string(b) + "\n", err
}

// KubeletConfig renders the KubeletConfiguration (YAML is a superset of JSON).
func (c Config) KubeletConfig(resolvConf string) (string, error) {
	p := c.PKI()
	nodeIP, _, err := c.NodeIP()
	if err != nil {
		return "", err
	}
	conf := map[string]any{
		"apiVersion":               "kubelet.config.k8s.io/v1beta1",
		"kind":                     "KubeletConfiguration",
		"address":                  nodeIP.String(),
		"port":                     10250,
		"healthzBindAddress":       "127.0.0.1",
		"healthzPort":              10248,
		"cgroupDriver":             "cgroupfs",
		"failCgroupV1":             false,
		"failSwapOn":               false,
		"containerRuntimeEndpoint": "unix://" + c.ContainerdSocket(),
		"tlsCertFile":              p.Cert("kubelet-serving"),
		"tlsPrivateKeyFile":        p.Key("kubelet-serving"),
		"rotateCertificates":       false,
		"serverTLSBootstrap":       false,
		"authentication": map[string]any{
			"x509":      map[string]any{"clientCAFile": p.CACert()},
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": true},
		},
		"authorization": map[string]any{"mode": "Webhook"},
		"clusterDomain": "cluster.local",
		"resolvConf":    resolvConf,
		"evictionHard": map[string]string{
			"memory.available":   "1Mi",
			"nodefs.available":   "1%",
			"nodefs.inodesFree":  "1%",
			"imagefs.available":  "1%",
			"imagefs.inodesFree": "1%",
		},
		"evictionPressureTransitionPeriod": "5s",
		"imageGCHighThresholdPercent":      100,
		"imageGCLowThresholdPercent":       99,
		"volumePluginDir":                  filepath.Join(c.KubeletRoot(), "volume-plugins"),
		"podLogsDir":                       c.PodLogsDir(),
		"staticPodPath":                    "",
		"syncFrequency":                    "10s",
		"fileCheckFrequency":               "10s",
		"nodeStatusUpdateFrequency":        "5s",
		"protectKernelDefaults":            false,
		"makeIPTablesUtilChains":           false,
		"localStorageCapacityIsolation":    true,
		"serializeImagePulls":              false,
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	return string(b) + "\n", err
}

// Component is one process of the cluster.
type Component struct {
	Name string
	Args []string // Args[0] is the executable
	// Ports this component listens on (checked before start).
	Ports []int
}

// Components returns the processes in start order.
func (c Config) Components() []Component {
	p := c.PKI()
	nodeIP, _, _ := c.NodeIP()
	etcdPeer := "http://127.0.0.1:" + strconv.Itoa(c.EtcdPeerPort)
	_, regPortS, _ := net.SplitHostPort(c.RegistryAddr)
	regPort, _ := strconv.Atoi(regPortS)
	return []Component{
		{Name: "registry", Args: []string{c.Kdev, "registry", "serve"}, Ports: []int{regPort}},
		{Name: "containerd", Args: []string{"/usr/bin/containerd", "--config", c.Conf("containerd.toml")}},
		{Name: "etcd", Ports: []int{c.EtcdClientPort, c.EtcdPeerPort}, Args: []string{c.Bin("etcd"),
			"--name=kdev",
			"--data-dir=" + c.EtcdDataDir(),
			"--listen-client-urls=" + c.EtcdURL(),
			"--advertise-client-urls=" + c.EtcdURL(),
			"--listen-peer-urls=" + etcdPeer,
			"--initial-advertise-peer-urls=" + etcdPeer,
			"--initial-cluster=kdev=" + etcdPeer,
			"--cert-file=" + p.Cert("etcd-server"),
			"--key-file=" + p.Key("etcd-server"),
			"--client-cert-auth",
			"--trusted-ca-file=" + p.CACert(),
			"--quota-backend-bytes=2147483648",
			"--snapshot-count=10000",
		}},
		{Name: "kube-apiserver", Ports: []int{c.APIServerPort}, Args: []string{c.Bin("kube-apiserver"),
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(c.APIServerPort),
			"--etcd-servers=" + c.EtcdURL(),
			"--etcd-cafile=" + p.CACert(),
			"--etcd-certfile=" + p.Cert("apiserver-etcd-client"),
			"--etcd-keyfile=" + p.Key("apiserver-etcd-client"),
			"--client-ca-file=" + p.CACert(),
			"--tls-cert-file=" + p.Cert("apiserver"),
			"--tls-private-key-file=" + p.Key("apiserver"),
			"--service-cluster-ip-range=" + c.ServiceCIDR,
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + p.SAPub(),
			"--service-account-signing-key-file=" + p.SAKey(),
			"--authorization-mode=Node,RBAC",
			"--enable-admission-plugins=NodeRestriction",
			"--allow-privileged=true",
			"--kubelet-client-certificate=" + p.Cert("apiserver-kubelet-client"),
			"--kubelet-client-key=" + p.Key("apiserver-kubelet-client"),
			"--kubelet-certificate-authority=" + p.CACert(),
			"--kubelet-preferred-address-types=InternalIP",
			"--endpoint-reconciler-type=none",
			"--profiling=false",
		}},
		{Name: "kube-controller-manager", Ports: []int{10257}, Args: []string{c.Bin("kube-controller-manager"),
			"--bind-address=127.0.0.1",
			"--kubeconfig=" + c.Conf("controller-manager.kubeconfig"),
			"--authentication-kubeconfig=" + c.Conf("controller-manager.kubeconfig"),
			"--authorization-kubeconfig=" + c.Conf("controller-manager.kubeconfig"),
			"--use-service-account-credentials=true",
			"--service-account-private-key-file=" + p.SAKey(),
			"--root-ca-file=" + p.CACert(),
			"--cluster-signing-cert-file=" + p.CACert(),
			"--cluster-signing-key-file=" + p.CAKey(),
			"--service-cluster-ip-range=" + c.ServiceCIDR,
			"--leader-elect=false",
			"--profiling=false",
		}},
		{Name: "kube-scheduler", Ports: []int{10259}, Args: []string{c.Bin("kube-scheduler"),
			"--bind-address=127.0.0.1",
			"--kubeconfig=" + c.Conf("scheduler.kubeconfig"),
			"--authentication-kubeconfig=" + c.Conf("scheduler.kubeconfig"),
			"--authorization-kubeconfig=" + c.Conf("scheduler.kubeconfig"),
			"--leader-elect=false",
			"--profiling=false",
		}},
		{Name: "kubelet", Ports: []int{10250, 10248}, Args: []string{c.Bin("kubelet"),
			"--config=" + c.Conf("kubelet.yaml"),
			"--kubeconfig=" + c.Conf("kubelet.kubeconfig"),
			"--root-dir=" + c.KubeletRoot(),
			"--cert-dir=" + filepath.Join(c.KubeletRoot(), "pki"),
			"--node-ip=" + nodeIP.String(),
			"--hostname-override=" + c.NodeName,
		}},
	}
}

// shellQuote renders argv for humans.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
