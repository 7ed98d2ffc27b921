// Package clitest has test helpers for the plugins' command layers: a
// RESTMapper that knows the kinds and short names a real cluster reports.
package clitest

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/restmapper"
	clienttesting "k8s.io/client-go/testing"
)

// Resources are the API resources Mapper knows: pods, services and the
// apps/v1 workloads, with their short names.
var Resources = []*metav1.APIResourceList{
	{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "pods", Kind: "Pod", Namespaced: true, ShortNames: []string{"po"}, Verbs: []string{"get"}},
		{Name: "services", Kind: "Service", Namespaced: true, ShortNames: []string{"svc"}, Verbs: []string{"get"}},
	}},
	{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
		{Name: "deployments", Kind: "Deployment", Namespaced: true, ShortNames: []string{"deploy"}, Verbs: []string{"get"}},
		{Name: "statefulsets", Kind: "StatefulSet", Namespaced: true, ShortNames: []string{"sts"}, Verbs: []string{"get"}},
		{Name: "daemonsets", Kind: "DaemonSet", Namespaced: true, ShortNames: []string{"ds"}, Verbs: []string{"get"}},
		{Name: "replicasets", Kind: "ReplicaSet", Namespaced: true, ShortNames: []string{"rs"}, Verbs: []string{"get"}},
	}},
	{GroupVersion: "batch/v1", APIResources: []metav1.APIResource{
		{Name: "cronjobs", Kind: "CronJob", Namespaced: true, ShortNames: []string{"cj"}, Verbs: []string{"get"}},
		{Name: "jobs", Kind: "Job", Namespaced: true, Verbs: []string{"get"}},
	}},
}

// Mapper is a RESTMapper over Resources, with short names expanded as a
// real cluster's discovery does.
func Mapper(t testing.TB) meta.RESTMapper {
	t.Helper()
	disc := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: Resources}}
	groups, err := restmapper.GetAPIGroupResources(disc)
	if err != nil {
		t.Fatal(err)
	}
	return restmapper.NewShortcutExpander(restmapper.NewDiscoveryRESTMapper(groups), disc, nil)
}
