package patcher

import (
	"context"
	"strings"
	"testing"
)

func TestOwnershipAnalysis(t *testing.T) {
	h := newHarness(t, namespace(""), demoDeployment())
	if _, err := h.p.Patch(context.Background(), cfgFor(userKey(t, "alice"))); err != nil {
		t.Fatal(err)
	}
	own, err := AnalyzeOwnership(h.deployment(t), DefaultFieldManager, "spec", "template")
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, u := range own.Units {
		labels = append(labels, u.Label)
	}
	want := `container "devagent"|volume "devagent-keys"|spec.template.spec.shareProcessNamespace|annotation devpatch.kubectl-dev.io/agent-container|annotation devpatch.kubectl-dev.io/agent-version|annotation devpatch.kubectl-dev.io/mode|annotation devpatch.kubectl-dev.io/target-container`
	if got := strings.Join(labels, "|"); got != want {
		t.Fatalf("units\n%s\nwant\n%s", got, want)
	}
	if !own.HasContainer("devagent") || own.HasContainer("app") {
		t.Fatal("HasContainer")
	}
}
