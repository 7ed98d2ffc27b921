// Package jobstatus words what a Job's pods are doing, for the one-line
// errors that devpatch, devssh and devsync give about a Job without a
// running pod.
package jobstatus

import (
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Describe says what job's pods are doing, e.g. "1 succeeded, the Job is
// complete" or "2 pending"; pending is the count of its pending pods the
// caller found (the Job's status does not count them apart).
func Describe(job *batchv1.Job, pending int) string {
	var parts []string
	if pending > 0 {
		parts = append(parts, fmt.Sprintf("%d pending", pending))
	}
	if job.Status.Succeeded > 0 {
		parts = append(parts, fmt.Sprintf("%d succeeded", job.Status.Succeeded))
	}
	if job.Status.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", job.Status.Failed))
	}
	for _, c := range job.Status.Conditions {
		if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed || c.Type == batchv1.JobSuspended) {
			parts = append(parts, "the Job is "+strings.ToLower(string(c.Type)))
		}
	}
	if len(parts) == 0 {
		return "none active"
	}
	return strings.Join(parts, ", ")
}
