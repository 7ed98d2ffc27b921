package cli

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-dev/kubectl-dev/pkg/patcher"
)

// Target is an object argument as the user typed it: TYPE/NAME, or TYPE
// and NAME. This is the one parser of such arguments for the three plugins.
type Target struct {
	// Type is what the user typed for the kind (deploy, deployments.apps,
	// Deployment, po ...).
	Type string
	Name string
}

// String is TYPE/NAME, as kubectl's builder takes it.
func (t Target) String() string { return t.Type + "/" + t.Name }

// ParseTarget reads a workload argument as kubectl devpatch and "version"
// do: TYPE/NAME in one argument, or TYPE and NAME in two.
func ParseTarget(args []string) (Target, error) {
	switch len(args) {
	case 1:
		typ, name, ok := strings.Cut(args[0], "/")
		if !ok || typ == "" || name == "" {
			return Target{}, fmt.Errorf("expected TYPE/NAME such as deploy/demo, got %q", args[0])
		}
		return Target{Type: typ, Name: name}, nil
	case 2:
		if strings.Contains(args[0], "/") {
			return Target{}, fmt.Errorf("expected one TYPE/NAME, got %q", strings.Join(args, " "))
		}
		if args[0] == "" || args[1] == "" {
			return Target{}, fmt.Errorf("expected TYPE NAME such as deploy demo, got %q", strings.Join(args, " "))
		}
		return Target{Type: args[0], Name: args[1]}, nil
	case 0:
		return Target{}, errors.New("TYPE/NAME is required, e.g. deploy/demo")
	}
	return Target{}, fmt.Errorf("expected one TYPE/NAME, got %d arguments", len(args))
}

// ParsePodOrTarget reads the one object argument of devssh and devsync:
// TYPE/NAME, or a bare NAME, which is a pod (as kubectl exec reads it).
func ParsePodOrTarget(arg string) (Target, error) {
	if !strings.Contains(arg, "/") {
		if arg == "" {
			return Target{}, errors.New("expected a pod name or TYPE/NAME such as deploy/demo, got an empty argument")
		}
		return Target{Type: "pod", Name: arg}, nil
	}
	return ParseTarget([]string{arg})
}

// AliasKind is the kind's short form in the host aliases of "kubectl
// devssh config" (deployment, sts, ds, rs, pod); other kinds are kept as
// typed, in lower case.
func (t Target) AliasKind() string {
	switch strings.ToLower(strings.SplitN(t.Type, ".", 2)[0]) {
	case "deploy", "deployment", "deployments":
		return "deployment"
	case "sts", "statefulset", "statefulsets":
		return "sts"
	case "ds", "daemonset", "daemonsets":
		return "ds"
	case "rs", "replicaset", "replicasets":
		return "rs"
	case "po", "pod", "pods":
		return "pod"
	case "cj", "cronjob", "cronjobs":
		return "cronjob"
	case "job", "jobs":
		return "job"
	}
	return strings.ToLower(t.Type)
}

// ResolveKind maps what the user typed (deploy, deployments.apps,
// Deployment, sts, po ...) to a kind devpatch supports, the way kubectl's
// builder does, through the cluster's RESTMapper (which knows the short
// names).
func ResolveKind(mapper meta.RESTMapper, typ string) (patcher.Kind, error) {
	var gvk schema.GroupVersionKind
	fullGVR, gr := schema.ParseResourceArg(strings.ToLower(typ))
	if fullGVR != nil {
		gvk, _ = mapper.KindFor(*fullGVR)
	}
	if gvk.Empty() {
		gvk, _ = mapper.KindFor(gr.WithVersion(""))
	}
	if gvk.Empty() {
		fullGVK, gk := schema.ParseKindArg(typ)
		if fullGVK == nil {
			g := gk.WithVersion("")
			fullGVK = &g
		}
		if !fullGVK.Empty() {
			if m, err := mapper.RESTMapping(fullGVK.GroupKind(), fullGVK.Version); err == nil {
				gvk = m.GroupVersionKind
			}
		}
	}
	if gvk.Empty() {
		return "", fmt.Errorf("the server doesn't have a resource type %q", gr.Resource)
	}
	k, ok := patcher.KindForGroupKind(gvk.Group, gvk.Kind)
	if !ok {
		return "", fmt.Errorf("kubectl devpatch works on %s, not on %s", patcher.KindNames, strings.TrimSuffix(strings.ToLower(gvk.Kind)+"."+gvk.Group, "."))
	}
	return k, nil
}
