package patcher

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestSuperviseFromImageConfigThenRemove(t *testing.T) {
	h := newHarness(t, namespace(""), demoDeployment())
	h.p.ImageConfig = func(ctx context.Context, image string) ([]string, []string, error) {
		if image != "demo:latest" {
			t.Errorf("image %q", image)
		}
		return nil, []string{"python3", "-m", "e2e_k8s.demo"}, nil
	}
	ctx := context.Background()
	before := specJSON(t, h.deployment(t))
	cfg := cfgFor(userKey(t, "alice"))
	cfg.Supervise = true
	if _, err := h.p.Patch(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	spec := h.deployment(t).Spec.Template.Spec
	if len(spec.Containers) != 2 || spec.Containers[0].Name != "app" {
		t.Fatalf("containers %+v", spec.Containers)
	}
	want := "/.devagent/devagent supervise --socket /.devagent/ctl.sock -- python3 -m e2e_k8s.demo"
	if got := strings.Join(spec.Containers[0].Command, " "); got != want {
		t.Fatalf("command %q, want %q", got, want)
	}
	if len(spec.InitContainers) != 1 || strings.Join(spec.InitContainers[0].Command, " ") != "/devagent install /.devagent/devagent" {
		t.Fatalf("init containers %+v", spec.InitContainers)
	}
	patched := specJSON(t, h.deployment(t))
	// A re-run, with or without --supervise, changes nothing.
	if _, err := h.p.Patch(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Supervise = false
	if _, err := h.p.Patch(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if got := specJSON(t, h.deployment(t)); got != patched {
		t.Fatalf("a re-run changed the spec:\n%s\n%s", patched, got)
	}
	if _, err := h.p.Remove(ctx, cfgFor("")); err != nil {
		t.Fatal(err)
	}
	if got := specJSON(t, h.deployment(t)); got != before {
		t.Fatalf("after --remove the spec is\n%s\nwant\n%s", got, before)
	}
}

func TestSuperviseUserCommandRestored(t *testing.T) {
	d := demoDeployment()
	d.Spec.Template.Spec.Containers[0].Command = []string{"/app/server", "--port=8080"}
	d.Spec.Template.Spec.Containers[0].Args = []string{"-v"}
	h := newHarness(t, namespace(""), d)
	h.p.ImageConfig = func(context.Context, string) ([]string, []string, error) {
		t.Error("the registry was asked although the spec has a command")
		return nil, nil, errors.New("no")
	}
	ctx := context.Background()
	before := specJSON(t, h.deployment(t))
	cfg := cfgFor(userKey(t, "alice"))
	cfg.Supervise = true
	if _, err := h.p.Patch(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	c := h.deployment(t).Spec.Template.Spec.Containers[0]
	if strings.Join(c.Command, " ") != "/.devagent/devagent supervise --socket /.devagent/ctl.sock -- /app/server --port=8080" || strings.Join(c.Args, " ") != "-v" {
		t.Fatalf("command %q args %q", c.Command, c.Args)
	}
	if _, err := h.p.Remove(ctx, cfgFor("")); err != nil {
		t.Fatal(err)
	}
	if got := specJSON(t, h.deployment(t)); got != before {
		t.Fatalf("after --remove the spec is\n%s\nwant\n%s", got, before)
	}
}

func TestSuperviseNeedsACommand(t *testing.T) {
	h := newHarness(t, namespace(""), demoDeployment())
	h.p.ImageConfig = func(context.Context, string) ([]string, []string, error) {
		return nil, nil, errors.New("registry unreachable")
	}
	cfg := cfgFor(userKey(t, "alice"))
	cfg.Supervise = true
	_, err := h.p.Patch(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "--command") {
		t.Fatalf("err %v", err)
	}
	cfg.SuperviseCommand = []string{"/app/demo"}
	if _, err := h.p.Patch(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.deployment(t).Spec.Template.Spec.Containers[0].Command, " "); !strings.HasSuffix(got, "-- /app/demo") {
		t.Fatalf("command %q", got)
	}
}
