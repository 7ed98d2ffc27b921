package patcher

import (
	"context"
	"fmt"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
	"reflect"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RemoveResult is what a removal did or would do.
type RemoveResult struct {
	Kind Kind
	Name string
	Ref  string
	// Removed are the units that went away (or would).
	Removed []string
	// Kept are the units that stayed, each with why, e.g.
	// "spec.template.spec.shareProcessNamespace (also set by field manager "user")".
	Kept []string
	// Secret is "deleted", "not found" or "" (client dry-run).
	Secret  string
	Applied map[string]any
	Diff    string
	Changed bool
	Waited  bool
}

// Remove takes away everything devpatch's field manager owns of the
// workload by applying an empty configuration with the same manager,
// deletes the agent's Secret and waits for the rollout. Fields that another
// manager also owns stay, and are reported.
func (p *Patcher) Remove(ctx context.Context, cfg Config) (*RemoveResult, error) {
	cfg = cfg.withDefaults()
	if err := ValidateFieldManager(cfg.FieldManager); err != nil {
		return nil, err
	}
	w, err := getWorkload(ctx, p.Client, cfg.Kind, cfg.Namespace, cfg.Name)
	if err != nil {
		return nil, err
	}
	ref := w.ref()
	switch cfg.Kind {
	case KindPod:
		return nil, fmt.Errorf("%s: ephemeral containers cannot be removed; delete the pod to get rid of the agent (its controller, if any, creates a new one without it)", ref)
	case KindJob:
		return nil, fmt.Errorf("%s: its pods got the agent as ephemeral containers, which cannot be removed; it goes away when they end (or delete them)", ref)
	}
	res := &RemoveResult{Kind: cfg.Kind, Name: cfg.Name, Ref: ref}
	own, err := AnalyzeOwnership(w.meta, cfg.FieldManager, cfg.Kind.TemplatePath()...)
	if err != nil {
		return nil, err
	}
	ac, err := WorkloadApplyConfig(cfg.Kind, cfg.Namespace, cfg.Name, nil)
	if err != nil {
		return nil, err
	}
	if res.Applied, err = ToMap(ac); err != nil {
		return nil, err
	}
	supervisedTarget := ""
	if w.template.Annotations[AnnotationSupervise] != "" {
		supervisedTarget = w.template.Annotations[wire.AnnotationTarget]
	}
	for _, u := range own.Units {
		if supervisedTarget != "" && u.Label == fmt.Sprintf("container %q", supervisedTarget) {
			// devpatch --supervise co-owns the app container: its command
			// and the agent's mount go, the container stays.
			res.Removed = append(res.Removed, fmt.Sprintf("the supervisor in container %q (command, mount %s)", supervisedTarget, SuperviseMountPath))
			continue
		}
		if u.Stays() {
			res.Kept = append(res.Kept, fmt.Sprintf("%s (also set by field manager %s)", u.Label, quoteAll(u.CoOwners)))
		} else {
			res.Removed = append(res.Removed, u.Label)
		}
	}
	opts := metav1.ApplyOptions{FieldManager: cfg.FieldManager}
	if cfg.Diff || cfg.DryRun == DryRunServer {
		dry := opts
		dry.DryRun = []string{metav1.DryRunAll}
		preview, err := applyWorkload(ctx, p.Client, cfg.Kind, cfg.Namespace, ac, dry)
		if err != nil {
			return nil, translateApplyError(err, ref)
		}
		res.Changed = !reflect.DeepEqual(w.template, preview.template)
		if cfg.Diff {
			if res.Diff, err = UnifiedDiff(ref+" "+strings.Join(cfg.Kind.TemplatePath(), "."), w.template, preview.template); err != nil {
				return nil, err
			}
		}
	}
	if cfg.DryRun != DryRunNone {
		return res, nil
	}
	if err := p.restoreCommand(ctx, cfg, w); err != nil {
		return nil, err
	}
	if own.Owns() {
		after, err := applyWorkload(ctx, p.Client, cfg.Kind, cfg.Namespace, ac, opts)
		if err != nil {
			return nil, translateApplyError(err, ref)
		}
		res.Changed = !reflect.DeepEqual(w.template, after.template)
		// What the server did is what counts: a container or volume that is
		// still there stayed, whatever the managed fields said.
		res.Removed, res.Kept = checkRemoved(res.Removed, res.Kept, after)
		w = after
	}
	switch err := p.Client.CoreV1().Secrets(cfg.Namespace).Delete(ctx, wire.SecretName(cfg.Name), metav1.DeleteOptions{}); {
	case err == nil:
		res.Secret = "deleted"
	case apierrors.IsNotFound(err):
		res.Secret = "not found"
	case apierrors.IsForbidden(err):
		return res, forbiddenError(err)
	default:
		return res, fmt.Errorf("deleting secret/%s: %w", wire.SecretName(cfg.Name), err)
	}
	if res.Changed && cfg.Wait && !scaledToZero(w) {
		if rolls, why := rollsPods(w, p.Remedy); !rolls {
			if why != "" {
				p.warn("%s", why)
			}
		} else {
			if err := p.waitRollout(ctx, w, cfg.AgentContainer, false, cfg.Timeout); err != nil {
				return res, err
			}
			res.Waited = true
		}
	}
	return res, nil
}

// checkRemoved moves the containers and volumes reported removed that are
// still in the template to kept.
func checkRemoved(removed, kept []string, after *workload) ([]string, []string) {
	present := map[string]bool{}
	for _, c := range after.template.Spec.Containers {
		present[fmt.Sprintf("container %q", c.Name)] = true
	}
	for _, c := range after.template.Spec.InitContainers {
		present[fmt.Sprintf("init container %q", c.Name)] = true
	}
	for _, v := range after.template.Spec.Volumes {
		present[fmt.Sprintf("volume %q", v.Name)] = true
	}
	var out []string
	for _, r := range removed {
		if present[r] {
			kept = append(kept, r+" (still present after the removal)")
			continue
		}
		out = append(out, r)
	}
	return out, kept
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
