package buildkit

import (
	"reflect"
	"strings"
	"testing"
)

func TestDaemonConfig(t *testing.T) {
	got := daemonConfig("127.0.0.1:5000", "127.0.0.1:5001")
	for _, want := range []string{
		"[registry.\"127.0.0.1:5000\"]\n  http = true\n  insecure = true\n",
		"[registry.\"127.0.0.1:5001\"]\n  http = true\n  insecure = true\n",
		"[worker.oci]\n  enabled = true\n  snapshotter = \"overlayfs\"\n",
		"[worker.containerd]\n  enabled = false\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("buildkitd.toml lacks %q:\n%s", want, got)
		}
	}
}

func TestDaemonArgs(t *testing.T) {
	got := daemonArgs("/c/bin/buildkitd", "unix:///r/s.sock", "/c/state", "/r/b.toml", "/r/rk")
	want := []string{"--state-dir=/r/rk", "--net=host", "--pidns",
		"/c/bin/buildkitd", "--addr=unix:///r/s.sock", "--root=/c/state", "--config=/r/b.toml"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestBuildctlArgs(t *testing.T) {
	got, err := buildctlArgs(BuildOptions{
		Dir:        "/src/app",
		Dockerfile: "/src/files/Dockerfile.dev",
		Image:      "127.0.0.1:5000/x/app:dev",
		BuildArgs:  map[string]string{"BASE": "127.0.0.1:5000/x/base:1", "A": "a=b"},
		Target:     "nonroot",
		Insecure:   true,
	}, "/tmp/meta.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"build", "--progress=plain", "--frontend=dockerfile.v0",
		"--local=context=/src/app", "--local=dockerfile=/src/files", "--opt=filename=Dockerfile.dev",
		"--opt=target=nonroot",
		"--opt=build-arg:A=a=b", "--opt=build-arg:BASE=127.0.0.1:5000/x/base:1", "--opt=build-arg:SOURCE_DATE_EPOCH=0",
		"--output=type=image,name=127.0.0.1:5000/x/app:dev,push=true,rewrite-timestamp=true,registry.insecure=true",
		"--metadata-file=/tmp/meta.json",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}

	got, err = buildctlArgs(BuildOptions{Dir: "ctx", Image: "reg.example/app:1", BuildArgs: map[string]string{"SOURCE_DATE_EPOCH": "5"}}, "m")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(got, " ")
	for _, w := range []string{"--local=dockerfile=ctx --opt=filename=Dockerfile", "build-arg:SOURCE_DATE_EPOCH=5",
		"--output=type=image,name=reg.example/app:1,push=true,rewrite-timestamp=true --metadata"} {
		if !strings.Contains(joined, w) {
			t.Errorf("%q lacks %q", joined, w)
		}
	}
	if strings.Contains(joined, "target") {
		t.Errorf("no target given, got %q", joined)
	}
}

func TestBuildctlArgsRefused(t *testing.T) {
	for _, o := range []BuildOptions{
		{Image: "r/a:1"},
		{Dir: "d"},
		{Dir: "d", Image: "r/a:1,push=false"},
		{Dir: "d", Image: "r/a:1", BuildArgs: map[string]string{"": "x"}},
	} {
		if _, err := buildctlArgs(o, "m"); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestPushedDigest(t *testing.T) {
	d, err := pushedDigest([]byte(`{"containerimage.config.digest":"sha256:c","containerimage.digest":"sha256:abc","image.name":"r/a:1"}`))
	if err != nil || d != "sha256:abc" {
		t.Fatalf("got %q, %v", d, err)
	}
	if _, err := pushedDigest([]byte(`{}`)); err == nil {
		t.Fatal("no digest: no error")
	}
	if _, err := pushedDigest([]byte(`not json`)); err == nil {
		t.Fatal("not JSON: no error")
	}
}

func TestErrorLines(t *testing.T) {
	progress := `#4 CACHED

#5 [2/2] RUN echo broken && exit 3
#5 0.101 broken
#5 ERROR: process "/bin/sh -c echo broken && exit 3" did not complete successfully: exit code: 3
------
 > [2/2] RUN echo broken && exit 3:
0.101 broken
------
Dockerfile.bad:2
--------------------
   1 |     FROM base
   2 | >>> RUN echo broken && exit 3
   3 |     
--------------------
error: failed to solve: process "/bin/sh -c echo broken && exit 3" did not complete successfully: exit code: 3
`
	got := errorLines(progress)
	want := `#5 ERROR: process "/bin/sh -c echo broken && exit 3" did not complete successfully: exit code: 3
Dockerfile.bad:2
--------------------
   1 |     FROM base
   2 | >>> RUN echo broken && exit 3
   3 |     
--------------------
error: failed to solve: process "/bin/sh -c echo broken && exit 3" did not complete successfully: exit code: 3`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if got := errorLines("a\nb\nc\n"); got != "a\nb\nc" {
		t.Fatalf("no error lines: got %q, want the tail", got)
	}
}

func TestSubIDRanges(t *testing.T) {
	file := "alice:100000:65536\n1001:165536:65536\nbad line\n"
	if !hasRange(file, "alice", 1000) || !hasRange(file, "bob", 1001) {
		t.Fatal("existing ranges not found")
	}
	if hasRange(file, "carol", 1002) {
		t.Fatal("carol has no range")
	}
	if hasRange("dave:300000:10\n", "dave", 1003) {
		t.Fatal("a range of 10 is too small")
	}
	if got := freeRange(file, subIDCount); got != 231072 {
		t.Fatalf("freeRange = %d, want 231072", got)
	}
	if got := freeRange("", subIDCount); got != 100000 {
		t.Fatalf("freeRange of an empty file = %d, want 100000", got)
	}
	if got := freeRange("x:500000:65536\n", subIDCount); got != 100000 {
		t.Fatalf("freeRange below a far range = %d, want 100000", got)
	}
}
