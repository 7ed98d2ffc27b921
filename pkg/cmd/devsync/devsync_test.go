package devsync

import (
	"testing"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	o := &Options{LocalDir: dir, PodRunningTimeout: 1, Compress: "auto"}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	o.Compress = "gzip"
	if err := o.Validate(); err == nil {
		t.Error("--compress gzip was accepted")
	}
	o.Compress = "none"
	o.Restart, o.Signal = true, "HUP"
	if err := o.Validate(); err == nil {
		t.Error("--restart with --signal was accepted")
	}
	o.Restart, o.Signal, o.Dest = false, "", "relative"
	if err := o.Validate(); err == nil {
		t.Error("a relative --dest was accepted")
	}
	o.Dest, o.LocalDir = "", dir+"/missing"
	if err := o.Validate(); err == nil {
		t.Error("a missing LOCAL_DIR was accepted")
	}
}

func TestCompressContent(t *testing.T) {
	for _, tt := range []struct {
		mode, host string
		want       bool
	}{
		{"auto", "https://127.0.0.1:6443", false},
		{"auto", "127.0.0.1:6443", false},
		{"auto", "https://[::1]:6443", false},
		{"auto", "https://0.0.0.0:33445", false}, // k3d
		{"auto", "https://localhost:8443", false},
		{"auto", "https://10.0.0.5:6443", true},
		{"auto", "https://my-cluster.example.com", true},
		{"auto", "https://kubernetes.docker.internal:6443", true},
		{"auto", "https://127.0.0.1.example.com:6443", true},
		{"zstd", "https://127.0.0.1:6443", true},
		{"none", "https://my-cluster.example.com", false},
	} {
		if got, why := compressContent(tt.mode, tt.host); got != tt.want || why == "" {
			t.Errorf("compressContent(%q, %q) = %v (%q), want %v", tt.mode, tt.host, got, why, tt.want)
		}
	}
}
