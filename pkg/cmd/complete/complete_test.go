package complete

import (
	"context"
	"reflect"
	"testing"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
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
	} {
		got, dir := completeWorkload(context.Background(), cs, "dev", tc.in)
		if !reflect.DeepEqual(got, tc.want) || dir != tc.dir {
			t.Errorf("completeWorkload(%q) = %v, %v; want %v, %v", tc.in, got, dir, tc.want, tc.dir)
		}
	}
}
