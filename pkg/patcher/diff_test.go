package patcher

import (
	"context"
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	h := newHarness(t, namespace(""), demoDeployment())
	cfg := cfgFor(userKey(t, "alice"))
	cfg.Diff = true
	res, err := h.p.Patch(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--- deployment.apps/demo spec.template (live)", "+    name: devagent", "+  shareProcessNamespace: true"} {
		if !strings.Contains(res.Diff, want) {
			t.Errorf("diff does not contain %q:\n%s", want, res.Diff)
		}
	}
}
