//go:build linux

package main

import (
	"reflect"
	"testing"

	"github.com/kubectl-dev/kubectl-dev/hack/buildkit"
)

func TestParseBuild(t *testing.T) {
	got, err := parseBuild([]string{"ctx", "-t", "127.0.0.1:5000/a/b:c", "--build-arg", "K=V=W", "--build-arg=E=", "--target", "nonroot", "-f", "x/Dockerfile"})
	if err != nil {
		t.Fatal(err)
	}
	want := buildkit.BuildOptions{Dir: "ctx", Image: "127.0.0.1:5000/a/b:c", Dockerfile: "x/Dockerfile", Target: "nonroot",
		BuildArgs: map[string]string{"K": "V=W", "E": ""}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	// Flags before the directory too.
	if got, err := parseBuild([]string{"--tag=r/x:1", "dir"}); err != nil || got.Dir != "dir" || got.Image != "r/x:1" {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, args := range [][]string{
		{"ctx"},                   // no -t
		{"-t", "r/x:1"},           // no dir
		{"a", "b", "-t", "r/x:1"}, // two dirs
		{"a", "-t", "r/x:1", "--build-arg", "NOVALUE"},
		{"a", "-t", "r/x:1", "--build-arg", "=v"},
		{"a", "-t", "r/x:1", "--nosuch"},
	} {
		if _, err := parseBuild(args); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
