//go:build linux

package cluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The kubelet and the CNI bridge plugin change a few things on the host
// outside our directories. Up records their prior state under
// StateDir/host (once, before the first change) and Down puts it back.

const ipForwardFile = "/proc/sys/net/ipv4/ip_forward"

// hostDirs are directories the kubelet creates at fixed paths.
var hostDirs = []string{"/var/lib/kubelet/device-plugins", "/var/lib/kubelet", "/var/log/containers"}

func (c Config) hostDir() string { return filepath.Join(c.StateDir, "host") }

// recordHost remembers, once per cluster lifetime, what Down must restore.
func (c Config) recordHost() error {
	d := c.hostDir()
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	rec := filepath.Join(d, "ip_forward")
	if !fileExists(rec) {
		b, err := os.ReadFile(ipForwardFile)
		if err == nil {
			if err := os.WriteFile(rec, b, 0o644); err != nil {
				return err
			}
		}
	}
	created := filepath.Join(d, "created-dirs")
	if !fileExists(created) {
		var missing []string
		for _, dir := range hostDirs {
			if !fileExists(dir) {
				missing = append(missing, dir)
			}
		}
		if err := os.WriteFile(created, []byte(strings.Join(missing, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// restoreHost undoes what recordHost recorded; our kubelet must not run.
func (c Config) restoreHost() {
	d := c.hostDir()
	if b, err := os.ReadFile(filepath.Join(d, "ip_forward")); err == nil {
		if cur, err := os.ReadFile(ipForwardFile); err == nil && strings.TrimSpace(string(cur)) != strings.TrimSpace(string(b)) {
			if err := os.WriteFile(ipForwardFile, b, 0o644); err == nil {
				fmt.Fprintf(c.Out, "restored net.ipv4.ip_forward=%s\n", strings.TrimSpace(string(b)))
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(d, "created-dirs"))
	if err != nil {
		return
	}
	for _, dir := range strings.Fields(string(b)) {
		if dir == "/var/lib/kubelet/device-plugins" {
			// What our kubelet put there: its socket and checkpoint.
			_ = os.Remove(filepath.Join(dir, "kubelet.sock"))
			_ = os.Remove(filepath.Join(dir, "kubelet_internal_checkpoint"))
		}
		_ = os.Remove(dir) // only when empty
	}
}

// NodeIP is the node's InternalIP: the gateway address of the pod bridge.
// The kubelet refuses a loopback node IP and this machine may have no dummy
// interfaces, so the bridge (which is local to the host) carries it.
func (c Config) NodeIP() (net.IP, *net.IPNet, error) {
	_, n, err := net.ParseCIDR(c.PodCIDR)
	if err != nil {
		return nil, nil, err
	}
	ip := n.IP.To4()
	if ip == nil {
		return nil, nil, fmt.Errorf("pod CIDR %s: only IPv4 is supported", c.PodCIDR)
	}
	gw := make(net.IP, 4)
	copy(gw, ip)
	gw[3]++
	return gw, n, nil
}

// ensureBridge creates the pod bridge with the node IP (the same address the
// CNI bridge plugin would give it as gateway, so the plugin accepts it).
func (c Config) ensureBridge() error {
	ip, n, err := c.NodeIP()
	if err != nil {
		return err
	}
	ones, _ := n.Mask.Size()
	cmds := [][]string{}
	if !linkExists(c.Bridge) {
		cmds = append(cmds, []string{"link", "add", c.Bridge, "type", "bridge"})
	}
	cmds = append(cmds,
		[]string{"addr", "replace", fmt.Sprintf("%s/%d", ip, ones), "dev", c.Bridge},
		[]string{"link", "set", c.Bridge, "up"})
	for _, args := range cmds {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}
