package patcher

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// Unit is one thing devpatch added, as the user thinks of it: a container,
// a volume, an annotation or a field.
type Unit struct {
	// Label is how messages name it, e.g. `container "devagent"`.
	Label string
	// Path is the field path of the unit in the object.
	Path fieldpath.Path
	// CoOwners are the other field managers that own the unit itself too:
	// an empty apply leaves it in place.
	CoOwners []string
}

// Stays is whether an empty apply by devpatch's manager leaves the unit.
func (u Unit) Stays() bool { return len(u.CoOwners) > 0 }

// Ownership is what a field manager owns of an object's pod template, and
// who else owns the same.
type Ownership struct {
	Units []Unit
}

// Owns is whether the manager owns anything of the object.
func (o Ownership) Owns() bool { return len(o.Units) > 0 }

// HasContainer is whether the manager owns the container (or init
// container) item name.
func (o Ownership) HasContainer(name string) bool {
	for _, u := range o.Units {
		if u.Label == fmt.Sprintf("container %q", name) || u.Label == fmt.Sprintf("init container %q", name) {
			return true
		}
	}
	return false
}

// managerSets reads the managedFields of an object into one set per
// manager (operations and subresources merged).
func managerSets(meta metav1.Object) (map[string]*fieldpath.Set, map[string]bool, error) {
	sets := map[string]*fieldpath.Set{}
	applies := map[string]bool{}
	for _, e := range meta.GetManagedFields() {
		if e.FieldsV1 == nil {
			continue
		}
		s := &fieldpath.Set{}
		if err := s.FromJSON(bytes.NewReader(e.FieldsV1.Raw)); err != nil {
			return nil, nil, fmt.Errorf("reading the managed fields of manager %q: %w", e.Manager, err)
		}
		if prev, ok := sets[e.Manager]; ok {
			s = prev.Union(s)
		}
		sets[e.Manager] = s
		if e.Operation == metav1.ManagedFieldsOperationApply {
			applies[e.Manager] = true
		}
	}
	return sets, applies, nil
}

// AnalyzeOwnership lists the units that manager owns under the pod
// template at prefix (spec.template for workloads), each with the other
// managers that own it too.
func AnalyzeOwnership(meta metav1.Object, manager string, prefix ...string) (Ownership, error) {
	sets, _, err := managerSets(meta)
	if err != nil {
		return Ownership{}, err
	}
	ours, ok := sets[manager]
	if !ok {
		return Ownership{}, nil
	}
	tpl := fieldpath.Path{}
	for _, p := range prefix {
		tpl = append(tpl, fieldpath.PathElement{FieldName: ptrTo(p)})
	}
	units := map[string]Unit{}
	ours.Iterate(func(p fieldpath.Path) {
		if !hasPrefix(p, tpl) {
			return
		}
		rel := p[len(tpl):]
		var u Unit
		switch {
		case startsWith(rel, "spec", "containers") && len(rel) >= 3 && rel[2].Key != nil:
			u = Unit{Label: fmt.Sprintf("container %q", keyName(rel[2])), Path: copyPath(p[:len(tpl)+3])}
		case startsWith(rel, "spec", "initContainers") && len(rel) >= 3 && rel[2].Key != nil:
			u = Unit{Label: fmt.Sprintf("init container %q", keyName(rel[2])), Path: copyPath(p[:len(tpl)+3])}
		case startsWith(rel, "spec", "volumes") && len(rel) >= 3 && rel[2].Key != nil:
			u = Unit{Label: fmt.Sprintf("volume %q", keyName(rel[2])), Path: copyPath(p[:len(tpl)+3])}
		case startsWith(rel, "metadata", "annotations") && len(rel) == 3:
			u = Unit{Label: "annotation " + *rel[2].FieldName, Path: copyPath(p)}
		case len(rel) <= 2 && (startsWith(rel, "metadata") || startsWith(rel, "spec", "containers") || startsWith(rel, "spec", "initContainers") || startsWith(rel, "spec", "volumes")), len(rel) == 1:
			return // parents of the units above
		default:
			u = Unit{Label: strings.TrimPrefix(p.String(), "."), Path: copyPath(p)}
		}
		if _, seen := units[u.Path.String()]; !seen {
			units[u.Path.String()] = u
		}
	})
	var out Ownership
	for _, u := range units {
		for m, s := range sets {
			if m != manager && s.Has(u.Path) {
				u.CoOwners = append(u.CoOwners, m)
			}
		}
		sort.Strings(u.CoOwners)
		out.Units = append(out.Units, u)
	}
	sort.Slice(out.Units, func(i, j int) bool { return unitOrder(out.Units[i]) < unitOrder(out.Units[j]) })
	return out, nil
}

func unitOrder(u Unit) string {
	rank := "3"
	switch {
	case strings.HasPrefix(u.Label, "container "):
		rank = "0"
	case strings.HasPrefix(u.Label, "volume "):
		rank = "1"
	case strings.HasPrefix(u.Label, "annotation "):
		rank = "4"
	}
	return rank + u.Label
}

func ptrTo(s string) *string { return &s }

func hasPrefix(p, prefix fieldpath.Path) bool {
	if len(p) < len(prefix) {
		return false
	}
	for i := range prefix {
		if !p[i].Equals(prefix[i]) {
			return false
		}
	}
	return true
}

// startsWith is whether p starts with the field names.
func startsWith(p fieldpath.Path, names ...string) bool {
	if len(p) < len(names) {
		return false
	}
	for i, n := range names {
		if p[i].FieldName == nil || *p[i].FieldName != n {
			return false
		}
	}
	return true
}

func keyName(pe fieldpath.PathElement) string {
	for _, f := range *pe.Key {
		if f.Name == "name" {
			return f.Value.AsString()
		}
	}
	return pe.String()
}

func copyPath(p fieldpath.Path) fieldpath.Path { return append(fieldpath.Path(nil), p...) }
