package jobstatus

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestDescribe(t *testing.T) {
	complete := batchv1.JobStatus{Succeeded: 1, Conditions: []batchv1.JobCondition{
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue},
		{Type: batchv1.JobSuspended, Status: corev1.ConditionFalse},
	}}
	for _, tt := range []struct {
		status  batchv1.JobStatus
		pending int
		want    string
	}{
		{batchv1.JobStatus{}, 0, "none active"},
		{batchv1.JobStatus{}, 2, "2 pending"},
		{complete, 0, "1 succeeded, the Job is complete"},
		{batchv1.JobStatus{Failed: 3, Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}}, 1, "1 pending, 3 failed, the Job is failed"},
	} {
		if got := Describe(&batchv1.Job{Status: tt.status}, tt.pending); got != tt.want {
			t.Errorf("Describe(%+v, %d) = %q, want %q", tt.status, tt.pending, got, tt.want)
		}
	}
}
