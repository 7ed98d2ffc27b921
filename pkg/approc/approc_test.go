package approc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const (
	appID   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	agentID = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	pauseID = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	podUID  = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
)

func TestContainerIDFromCgroup(t *testing.T) {
	cases := map[string]string{
		"v1 cgroupfs": "12:memory:/kubepods/besteffort/pod" + podUID + "/" + appID + "\n" +
			"11:cpu,cpuacct:/kubepods/besteffort/pod" + podUID + "/" + appID + "\n1:name=systemd:/kubepods/besteffort/pod" + podUID + "/" + appID + "\n",
		"v1 burstable":       "4:pids:/kubepods/burstable/pod" + podUID + "/" + appID + "\n",
		"v2 systemd":         "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b4e28ba_2fa1_11d2_883f_0016d3cca427.slice/cri-containerd-" + appID + ".scope\n",
		"v2 cgroupns":        "0::/../cri-containerd-" + appID + ".scope\n",
		"v2 cgroupfs ns":     "0::/../" + appID + "\n",
		"crio":               "0::/kubepods.slice/kubepods-pod.slice/crio-" + appID + ".scope/container\n",
		"docker":             "0::/system.slice/docker-" + appID + ".scope\n",
		"conmon then real":   "1:name=systemd:/crio-conmon-" + agentID + ".scope\n0::/crio-" + appID + ".scope\n",
		"v1 with empty line": "\n5:devices:/kubepods/pod" + podUID + "/" + appID + "\n",
	}
	for name, in := range cases {
		if got := ContainerIDFromCgroup([]byte(in)); got != appID {
			t.Errorf("%s: got %q, want %q", name, got, appID)
		}
	}
	for _, in := range []string{"0::/\n", "0::/user.slice/user-0.slice/session-1.scope\n", ""} {
		if got := ContainerIDFromCgroup([]byte(in)); got != "" {
			t.Errorf("%q: got %q, want none", in, got)
		}
	}
}

func TestParseStat(t *testing.T) {
	stat := "42 (my (weird) name) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 10 18446744073709551615"
	ppid, start := parseStat([]byte(stat))
	if ppid != 7 || start != 12345 {
		t.Fatalf("parseStat = %d, %d", ppid, start)
	}
}

type fakeProc struct {
	pid, ppid int
	start     int
	id        string
	uid, gid  int
	cwd       string
	env       string
}

func writeProc(t *testing.T, dir string, procs []fakeProc) {
	t.Helper()
	for _, p := range procs {
		d := filepath.Join(dir, strconv.Itoa(p.pid))
		os.MkdirAll(d, 0o755)
		cg := "0::/"
		if p.id != "" {
			cg = "12:memory:/kubepods/besteffort/pod" + podUID + "/" + p.id + "\n"
		}
		os.WriteFile(filepath.Join(d, "cgroup"), []byte(cg), 0o644)
		os.WriteFile(filepath.Join(d, "stat"), []byte(strconv.Itoa(p.pid)+" (x) S "+strconv.Itoa(p.ppid)+" 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 "+strconv.Itoa(p.start)+" 0 0"), 0o644)
		os.WriteFile(filepath.Join(d, "status"), []byte("Name:\tx\nUid:\t"+strconv.Itoa(p.uid)+"\t"+strconv.Itoa(p.uid)+"\t0\t0\nGid:\t"+strconv.Itoa(p.gid)+"\t"+strconv.Itoa(p.gid)+"\t0\t0\nGroups:\t4 27\n"), 0o644)
		if p.cwd != "" {
			os.Symlink(p.cwd, filepath.Join(d, "cwd"))
		}
		os.WriteFile(filepath.Join(d, "environ"), []byte(p.env), 0o644)
	}
	os.MkdirAll(filepath.Join(dir, "self"), 0o755) // not numeric: skipped
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	writeProc(t, dir, []fakeProc{
		{pid: 1, ppid: 0, start: 1, id: pauseID},
		{pid: 7, ppid: 0, start: 5, id: appID, uid: 1000, gid: 1000, cwd: "/app", env: "PATH=/usr/bin\x00HOME=/app\x00"},
		{pid: 9, ppid: 7, start: 9, id: appID, uid: 1000, gid: 1000},
		{pid: 12, ppid: 0, start: 8, id: agentID},
		{pid: 13, ppid: 12, start: 10, id: agentID},
	})
	f := Finder{ProcDir: dir, SelfPID: 12}
	for _, id := range []string{appID, "containerd://" + appID, appID[:12]} {
		p, err := f.FindByID(id)
		if err != nil {
			t.Fatal(err)
		}
		if p.PID != 7 || p.UID != 1000 || p.GID != 1000 || p.Cwd != "/app" || strings.Join(p.Environ, ",") != "PATH=/usr/bin,HOME=/app" || len(p.Groups) != 2 {
			t.Fatalf("FindByID(%s) = %+v", id, p)
		}
	}
	p, err := f.FindOther()
	if err != nil || p.PID != 7 || p.ContainerID != appID {
		t.Fatalf("FindOther = %+v, %v", p, err)
	}
	if _, err := f.FindByID("0000000000000000000000000000000000000000000000000000000000000000"); err == nil {
		t.Fatal("unknown ID found")
	}
	// A restarted container: new ID, new processes; the old one is gone.
	newID := strings.Repeat("b", 64)
	dir2 := t.TempDir()
	writeProc(t, dir2, []fakeProc{
		{pid: 1, id: pauseID}, {pid: 12, id: agentID}, {pid: 30, ppid: 0, start: 50, id: newID, cwd: "/srv"},
		{pid: 40, ppid: 0, start: 60, id: strings.Repeat("c", 64)},
	})
	f2 := Finder{ProcDir: dir2, SelfPID: 12}
	if p, err := f2.FindByID(newID); err != nil || p.PID != 30 || p.Cwd != "/srv" {
		t.Fatalf("after restart: %+v, %v", p, err)
	}
	if _, err := f2.FindOther(); err == nil || !strings.Contains(err.Error(), "2 other containers") {
		t.Fatalf("FindOther with two apps: %v", err)
	}
}
