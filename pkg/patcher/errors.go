package patcher

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConflictError is a server-side apply conflict: fields devpatch would set
// that another field manager owns with another value.
type ConflictError struct {
	Ref    string
	Fields []string // ".spec.template.spec.shareProcessNamespace (field manager "kubectl")"
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s: %s, with another value than devpatch's; nothing was changed. Re-run with --force-conflicts to take %s over (the other manager's next apply may take %s back, or conflict in turn)",
		e.Ref, strings.Join(e.Fields, "; "), map[bool]string{true: "it", false: "them"}[len(e.Fields) == 1], map[bool]string{true: "it", false: "them"}[len(e.Fields) == 1])
}

// translateApplyError turns an apply conflict into a ConflictError and a
// 403 into one line; other errors pass through wrapped with the object.
func translateApplyError(err error, ref string) error {
	if err == nil {
		return nil
	}
	if apierrors.IsConflict(err) {
		var status apierrors.APIStatus
		if errors.As(err, &status) && status.Status().Details != nil {
			ce := &ConflictError{Ref: ref}
			for _, c := range status.Status().Details.Causes {
				if c.Type != metav1.CauseTypeFieldManagerConflict {
					continue
				}
				who := strings.TrimPrefix(c.Message, "conflict with ")
				ce.Fields = append(ce.Fields, fmt.Sprintf("%s is also set by field manager %s", c.Field, who))
			}
			if len(ce.Fields) > 0 {
				return ce
			}
		}
	}
	if apierrors.IsForbidden(err) {
		return forbiddenError(err)
	}
	return fmt.Errorf("applying to %s: %w", ref, err)
}
