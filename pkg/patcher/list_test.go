package patcher

import (
	"context"
	"testing"
)

func TestList(t *testing.T) {
	h := newHarness(t, namespace(""), demoDeployment())
	ctx := context.Background()
	if _, err := h.p.Patch(ctx, cfgFor(userKey(t, "alice"))); err != nil {
		t.Fatal(err)
	}
	entries, err := h.p.List(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name != "demo" || entries[0].Mode != "same-user" || entries[0].AgentVersion != "v1.0.0" {
		t.Fatalf("list = %+v", entries)
	}
}
