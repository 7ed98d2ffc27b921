//go:build linux

package cluster

import (
	"slices"
	"strings"
	"testing"
)

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
