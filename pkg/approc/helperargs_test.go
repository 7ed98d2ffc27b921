package approc

import (
	"flag"
	"io"
	"reflect"
	"testing"
)

// The arguments the agent builds for a helper are read back as the same app.
func TestAppArgsRoundTrip(t *testing.T) {
	p := &Proc{PID: 42, UID: 1000, GID: 1001, Groups: []int{5, 6}, Cwd: "/app dir"}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	target := appFlags(fs)
	if err := fs.Parse(appArgs(p)); err != nil {
		t.Fatal(err)
	}
	got, err := target()
	want := appTarget{pid: 42, cwd: "/app dir", id: Identity{UID: 1000, GID: 1001, Groups: []int{5, 6}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip = %+v, %v; want %+v", got, err, want)
	}

	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	target = appFlags(fs)
	if err := fs.Parse([]string{"--uid", "0", "--gid", "0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := target(); err == nil {
		t.Fatal("no --pid was accepted")
	}
}
