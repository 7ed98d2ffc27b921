package devsync

import (
	"testing"

	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
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

func TestCompression(t *testing.T) {
	for mode, want := range map[string]filesync.Compression{
		"auto": filesync.CompressAuto, "zstd": filesync.CompressAlways, "none": filesync.CompressNever,
	} {
		if got := compression(mode); got != want {
			t.Errorf("compression(%q) = %v, want %v", mode, got, want)
		}
	}
}
