package devsync

import (
	"reflect"
	"testing"
)

func TestRewriteVerbose(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"kubectl-devsync", "-v", "./src", "deploy/demo"}, []string{"kubectl-devsync", "--verbose", "./src", "deploy/demo"}},
		{[]string{"kubectl-devsync", "./src", "deploy/demo", "-v"}, []string{"kubectl-devsync", "./src", "deploy/demo", "--verbose"}},
		{[]string{"kubectl-devsync", "-v", "6", "./src", "deploy/demo"}, []string{"kubectl-devsync", "-v", "6", "./src", "deploy/demo"}},
		{[]string{"kubectl-devsync", "-v=6", "./src", "deploy/demo"}, []string{"kubectl-devsync", "-v=6", "./src", "deploy/demo"}},
		{[]string{"kubectl-devsync", "./src", "deploy/demo", "--", "-v"}, []string{"kubectl-devsync", "./src", "deploy/demo", "--", "-v"}},
	} {
		if got := RewriteVerbose(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	o := &Options{LocalDir: dir, PodRunningTimeout: 1}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
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
