//go:build linux

package cluster

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func testConfig(t *testing.T) Config {
	c := Default()
	d := t.TempDir()
	c.CacheDir, c.StateDir, c.RunDir = filepath.Join(d, "cache"), filepath.Join(d, "state"), filepath.Join(d, "run")
	c.LogDir, c.PidDir = filepath.Join(c.StateDir, "logs"), filepath.Join(c.StateDir, "pids")
	c.Kubeconfig = filepath.Join(c.StateDir, "admin.kubeconfig")
	return c
}

func TestConfigsRender(t *testing.T) {
	c := testConfig(t)
	ctd := c.ContainerdConfig()
	for _, want := range []string{"version = 2", "restrict_oom_score_adj = true", `sandbox_image = "` + c.PauseImage + `"`,
		`registry.mirrors."` + c.RegistryAddr + `"]`, `endpoint = ["http://` + c.RegistryAddr + `"]`,
		`registry.mirrors."` + c.RegistryLinkAddr + `"]`, `endpoint = ["http://` + c.RegistryLinkAddr + `"]`, `bin_dir = "/usr/lib/cni"`,
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
