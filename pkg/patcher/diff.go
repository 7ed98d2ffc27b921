package patcher

import (
	"github.com/pmezard/go-difflib/difflib"
	"sigs.k8s.io/yaml"
)

// UnifiedDiff renders the change from before to after (any two objects) as
// a unified diff of their YAML; it is empty when they are equal.
func UnifiedDiff(name string, before, after any) (string, error) {
	a, err := yaml.Marshal(before)
	if err != nil {
		return "", err
	}
	b, err := yaml.Marshal(after)
	if err != nil {
		return "", err
	}
	if string(a) == string(b) {
		return "", nil
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(string(a)),
		B:        difflib.SplitLines(string(b)),
		FromFile: name + " (live)",
		ToFile:   name + " (after devpatch)",
		Context:  3,
	})
}
