//go:build linux

package cluster

import (
	"testing"
)

func TestRewriteStagingReplaces(t *testing.T) {
	in := "replace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/cri-client => ./staging/src/k8s.io/cri-client\n\tgithub.com/x/y => github.com/x/y v1.0.0\n)\n"
	got := string(rewriteStagingReplaces([]byte(in), "v1.34.4"))
	want := "replace (\n\tk8s.io/api => k8s.io/api v0.34.4\n\tk8s.io/cri-client => k8s.io/cri-client v0.34.4\n\tgithub.com/x/y => github.com/x/y v1.0.0\n)\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
