package complete

import (
	"context"
	"reflect"
	"testing"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestCompleteWorkload(t *testing.T) {
	cs := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "dev"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "dev"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "prod"}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "store", Namespace: "dev"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "demo-x", Namespace: "dev"}},
		&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "dev"}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "nightly-123", Namespace: "dev"}},
	)
	for _, tc := range []struct {
		in   string
		want []string
		dir  cobra.ShellCompDirective
	}{
		{"d", []string{"deployment/", "deploy/", "daemonset/", "ds/"}, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp},
		{"deploy/", []string{"deploy/db", "deploy/demo"}, cobra.ShellCompDirectiveNoFileComp},
		{"deploy/de", []string{"deploy/demo"}, cobra.ShellCompDirectiveNoFileComp},
		{"sts/", []string{"sts/store"}, cobra.ShellCompDirectiveNoFileComp},
		{"pod/", []string{"pod/demo-x"}, cobra.ShellCompDirectiveNoFileComp},
		{"svc/", nil, cobra.ShellCompDirectiveNoFileComp},
		{"c", []string{"cronjob/", "cj/"}, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp},
		{"j", []string{"job/"}, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp},
		{"cronjob/", []string{"cronjob/nightly"}, cobra.ShellCompDirectiveNoFileComp},
		{"job/n", []string{"job/nightly-123"}, cobra.ShellCompDirectiveNoFileComp},
	} {
		got, dir := completeWorkload(context.Background(), cs, "dev", tc.in, workloadTypes)
		if !reflect.DeepEqual(got, tc.want) || dir != tc.dir {
			t.Errorf("completeWorkload(%q) = %v, %v; want %v, %v", tc.in, got, dir, tc.want, tc.dir)
		}
	}
}

func TestConnectTargetsOfferJobsNotCronJobs(t *testing.T) {
	got, _ := completeWorkload(context.Background(), fake.NewClientset(), "dev", "", connectTypes)
	has := map[string]bool{}
	for _, g := range got {
		has[g] = true
	}
	if !has["job/"] || has["cronjob/"] || has["cj/"] {
		t.Fatalf("devssh/devsync types: %v", got)
	}
}
