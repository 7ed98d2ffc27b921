package cluster

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func testConfig(t *testing.T) Config {
	c := Default()
	d := t.TempDir()
	c.CacheDir, c.StateDir, c.RunDir = filepath.Join(d, "cache"), filepath.Join(d, "state"), filepath.Join(d, "run")
	c.LogDir, c.PidDir = filepath.Join(c.StateDir, "logs"), filepath.Join(c.StateDir, "pids")
	c.Kubeconfig = filepath.Join(c.StateDir, "admin.kubeconfig")
	return c
}

func TestPKIEnsureReusesAndRepairs(t *testing.T) {
	c := testConfig(t)
	specs, err := c.CertSpecs()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	made, err := c.PKI().Ensure(specs, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(made) != len(specs)+2 { // + ca + sa
		t.Fatalf("made %v", made)
	}
	made, err = c.PKI().Ensure(specs, now)
	if err != nil || len(made) != 0 {
		t.Fatalf("second Ensure made %v, %v", made, err)
	}
	// A changed spec (new SAN) regenerates only that certificate.
	specs[0].DNS = append(specs[0].DNS, "extra.example")
	made, _ = c.PKI().Ensure(specs, now)
	if !slices.Equal(made, []string{"apiserver"}) {
		t.Fatalf("made %v, want [apiserver]", made)
	}
	// Expiring certificates are regenerated (the CA lives longer).
	made, _ = c.PKI().Ensure(specs, now.Add(certValidity))
	if len(made) != len(specs) || slices.Contains(made, "ca") {
		t.Fatalf("made %v", made)
	}
	cert, err := loadCert(c.PKI().Cert("apiserver"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cert.IPAddresses, net.ParseIP("10.96.0.1").Equal) || !slices.Contains(cert.DNSNames, "kubernetes.default") {
		t.Fatalf("apiserver SANs %v %v", cert.IPAddresses, cert.DNSNames)
	}
	admin, _ := loadCert(c.PKI().Cert("admin"))
	if admin.Subject.CommonName != "kubernetes-admin" || !slices.Equal(admin.Subject.Organization, []string{"system:masters"}) {
		t.Fatalf("admin subject %v", admin.Subject)
	}
	kl, _ := loadCert(c.PKI().Cert("kubelet-client"))
	if kl.Subject.CommonName != "system:node:"+c.NodeName || kl.Subject.Organization[0] != "system:nodes" {
		t.Fatalf("kubelet subject %v", kl.Subject)
	}
}

func TestConfigsRender(t *testing.T) {
	c := testConfig(t)
	ctd := c.ContainerdConfig()
	for _, want := range []string{"version = 2", "restrict_oom_score_adj = true", `sandbox_image = "` + c.PauseImage + `"`,
		`registry.mirrors."` + c.RegistryAddr + `"]`, `endpoint = ["http://` + c.RegistryAddr + `"]`, `bin_dir = "/usr/lib/cni"`,
		`address = "` + c.ContainerdSocket() + `"`} {
		if !strings.Contains(ctd, want) {
			t.Errorf("containerd config lacks %q:\n%s", want, ctd)
		}
	}
	cni, err := c.CNIConfig()
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Plugins []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(cni), &conf); err != nil {
		t.Fatal(err)
	}
	if len(conf.Plugins) != 2 || conf.Plugins[0]["bridge"] != "kdev0" || conf.Plugins[0]["ipMasq"] != false || conf.Plugins[1]["type"] != "loopback" {
		t.Fatalf("CNI config %s", cni)
	}
	kc, err := c.KubeletConfig("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	var k map[string]any
	if err := json.Unmarshal([]byte(kc), &k); err != nil {
		t.Fatal(err)
	}
	if k["cgroupDriver"] != "cgroupfs" || k["failSwapOn"] != false || k["containerRuntimeEndpoint"] != "unix://"+c.ContainerdSocket() {
		t.Fatalf("kubelet config %s", kc)
	}
	if ip, _ := c.FirstServiceIP(); ip.String() != "10.96.0.1" {
		t.Fatalf("first service IP %s", ip)
	}
}

func TestRewriteStagingReplaces(t *testing.T) {
	in := "replace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/cri-client => ./staging/src/k8s.io/cri-client\n\tgithub.com/x/y => github.com/x/y v1.0.0\n)\n"
	got := string(rewriteStagingReplaces([]byte(in), "v1.34.4"))
	want := "replace (\n\tk8s.io/api => k8s.io/api v0.34.4\n\tk8s.io/cri-client => k8s.io/cri-client v0.34.4\n\tgithub.com/x/y => github.com/x/y v1.0.0\n)\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestMountsUnder(t *testing.T) {
	mi := `22 1 0:21 / / rw - ext4 /dev/vda rw
100 22 0:50 / /var/lib/kubectl-dev/kubelet/pods/u/volumes/kubernetes.io~projected/kube-api-access-x rw - tmpfs tmpfs rw
101 22 0:51 / /run/kubectl-dev/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/shm rw - tmpfs shm rw
102 22 0:52 / /run/kubectl-dev/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs rw - overlay overlay rw
103 22 0:53 / /var/lib/kubectl-dev-other/x rw - tmpfs tmpfs rw
104 22 0:54 / /var/lib/kubectl-dev/with\040space rw - tmpfs tmpfs rw
105 22 0:55 / /run/kubectl-dev rw - tmpfs tmpfs rw
`
	got := mountsUnder(strings.NewReader(mi), "/var/lib/kubectl-dev", "/run/kubectl-dev/")
	want := []string{
		"/var/lib/kubectl-dev/kubelet/pods/u/volumes/kubernetes.io~projected/kube-api-access-x",
		"/run/kubectl-dev/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs",
		"/run/kubectl-dev/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/shm",
		"/var/lib/kubectl-dev/with space",
		"/run/kubectl-dev",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestListenInodes(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1923 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1923 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
`
	if got := listenInodes(strings.NewReader(tcp), 0x1923); !slices.Equal(got, []string{"4242"}) {
		t.Fatalf("6435: %v", got)
	}
	if got := listenInodes(strings.NewReader(tcp), 5000); !slices.Equal(got, []string{"4444"}) {
		t.Fatalf("5000: %v", got)
	}
	if got := listenInodes(strings.NewReader(tcp), 80); len(got) != 0 {
		t.Fatalf("80: %v", got)
	}
}

func TestParseStat(t *testing.T) {
	st, start, err := parseStat("1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 98765 1000 100 0\n")
	if err != nil || st != 'S' || start != 98765 {
		t.Fatalf("%c %d %v", st, start, err)
	}
}

func TestOurIptablesRules(t *testing.T) {
	out := `-P FORWARD ACCEPT
-N CNI-FORWARD
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -d 10.244.0.5/32 -j ACCEPT
-A FORWARD -i kdev0 -j ACCEPT
-A POSTROUTING -s 10.244.0.0/24 -m comment --comment "name: \"kdev\" id: \"abc\"" -j CNI-xyz
-A FORWARD -i cni0 -j ACCEPT
`
	got := ourIptablesRules(out, "kdev0", "10.244.0.0/24")
	if len(got) != 2 || strings.Join(got[0], " ") != "-D FORWARD -i kdev0 -j ACCEPT" {
		t.Fatalf("%q", got)
	}
	if got[1][7] != `name: "kdev" id: "abc"` {
		t.Fatalf("quoted comment: %q", got[1])
	}
}

func TestPidInfoAlive(t *testing.T) {
	_, start, err := procStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !(PidInfo{Pid: os.Getpid(), StartTime: start}).Alive() {
		t.Fatal("self not alive")
	}
	if (PidInfo{Pid: os.Getpid(), StartTime: start + 1}).Alive() {
		t.Fatal("reused pid counted as alive")
	}
}
