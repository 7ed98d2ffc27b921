package images

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestKdevBuildArgs(t *testing.T) {
	d := &dockerBuild{dir: "/repo/hack/images/demo-python", dockerfile: "/repo/hack/images/demo-python/Dockerfile",
		target: "nonroot", args: map[string]string{"BASE": "r/b:1@sha256:x", "A": "1"}}
	got := d.kdevBuildArgs("/repo", "r/demo-python:nonroot")
	want := []string{"hack/images/demo-python", "-t", "r/demo-python:nonroot", "--target", "nonroot",
		"--build-arg", "A=1", "--build-arg", "BASE=r/b:1@sha256:x"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	d = &dockerBuild{dir: "/cache/ctx", dockerfile: "/repo/hack/images/demo-go/Dockerfile"}
	got = d.kdevBuildArgs("/repo", "r/demo-go:latest")
	want = []string{"/cache/ctx", "-f", "hack/images/demo-go/Dockerfile", "-t", "r/demo-go:latest"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestDockerBuildInputs(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, data string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", "FROM scratch\nCOPY . /app/\n")
	write("app/a.py", "x = 1\n")
	d := &dockerBuild{dir: dir, dockerfile: filepath.Join(dir, "Dockerfile"), target: "latest", args: map[string]string{"BASE": "b"}}
	hash := func() string {
		h, err := d.inputs("r/x:1")
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	first := hash()
	if again := hash(); again != first {
		t.Fatalf("same inputs, two hashes: %s %s", first, again)
	}
	write("app/__pycache__/a.cpython-311.pyc", "bytecode")
	if h := hash(); h != first {
		t.Fatal("a byte-code cache changed the inputs")
	}
	changes := []func(){
		func() { write("app/a.py", "x = 2\n") },
		func() { write("app/b.py", "") },
		func() { write("Dockerfile", "FROM scratch\n") },
		func() { d.target = "nonroot" },
		func() { d.args = map[string]string{"BASE": "c"} },
		func() { _ = os.Chmod(filepath.Join(dir, "app/a.py"), 0o755) },
	}
	seen := map[string]bool{first: true}
	for i, change := range changes {
		change()
		h := hash()
		if seen[h] {
			t.Fatalf("change %d left the inputs' hash as before", i)
		}
		seen[h] = true
	}
	if h, _ := d.inputs("r/x:2"); seen[h] {
		t.Fatal("another reference, the same hash")
	}
}
