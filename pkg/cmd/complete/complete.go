// Package complete holds the plugins' shell completions: TYPE/NAME of the
// workloads they take, and kubectl's global flags. They are the plugins' own,
// because kubectl's completion package would bring kubectl's get and describe
// commands into every binary.
package complete

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

// workloadTypes are the TYPE words offered before the slash, long and short.
var workloadTypes = []string{
	"deployment", "deploy", "statefulset", "sts", "daemonset", "ds", "replicaset", "rs", "cronjob", "cj", "job", "pod", "po",
}

// connectTypes are those of devssh and devsync: a CronJob has no pods of
// its own (its Jobs do).
var connectTypes = []string{
	"deployment", "deploy", "statefulset", "sts", "daemonset", "ds", "replicaset", "rs", "job", "pod", "po",
}

// listNames lists the names of one workload type in a namespace.
func listNames(ctx context.Context, cs kubernetes.Interface, ns, typ string) ([]string, error) {
	var names []string
	opts := metav1.ListOptions{}
	switch typ {
	case "deployment", "deploy", "deployments":
		l, err := cs.AppsV1().Deployments(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case "statefulset", "sts", "statefulsets":
		l, err := cs.AppsV1().StatefulSets(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case "daemonset", "ds", "daemonsets":
		l, err := cs.AppsV1().DaemonSets(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case "replicaset", "rs", "replicasets":
		l, err := cs.AppsV1().ReplicaSets(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case "cronjob", "cj", "cronjobs":
		l, err := cs.BatchV1().CronJobs(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case "job", "jobs":
		l, err := cs.BatchV1().Jobs(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	case "pod", "po", "pods":
		l, err := cs.CoreV1().Pods(ns).List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range l.Items {
			names = append(names, o.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// completeWorkload completes one TYPE/NAME word: the types first, then the
// names of that type in the namespace.
func completeWorkload(ctx context.Context, cs kubernetes.Interface, ns, toComplete string, types []string) ([]string, cobra.ShellCompDirective) {
	typ, prefix, ok := strings.Cut(toComplete, "/")
	if !ok {
		var out []string
		for _, t := range types {
			if strings.HasPrefix(t, toComplete) {
				out = append(out, t+"/")
			}
		}
		return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
	}
	names, err := listNames(ctx, cs, ns, typ)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, typ+"/"+n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// WorkloadArg completes the TYPE/NAME argument of devpatch (every kind it
// patches) at position pos (0-based) and leaves the other positions to the
// shell's file completion.
func WorkloadArg(f cmdutil.Factory, pos int) cobra.CompletionFunc {
	return typedArg(f, pos, workloadTypes)
}

// TargetArg is WorkloadArg for devssh and devsync, which reach pods: no
// cronjobs (their Jobs are offered).
func TargetArg(f cmdutil.Factory, pos int) cobra.CompletionFunc {
	return typedArg(f, pos, connectTypes)
}

func typedArg(f cmdutil.Factory, pos int, types []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) != pos {
			if len(args) < pos {
				return nil, cobra.ShellCompDirectiveDefault
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cs, ns, err := clientAndNamespace(f)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
		defer cancel()
		return completeWorkload(ctx, cs, ns, toComplete, types)
	}
}

func clientAndNamespace(f cmdutil.Factory) (kubernetes.Interface, string, error) {
	cs, err := f.KubernetesClientSet()
	if err != nil {
		return nil, "", err
	}
	ns, _, err := f.ToRawKubeConfigLoader().Namespace()
	return cs, ns, err
}

// GlobalFlags completes --namespace, --context, --cluster and
// --user from the cluster and the kubeconfig, as kubectl does.
func GlobalFlags(cmd *cobra.Command, f cmdutil.Factory) {
	cmdutil.CheckErr(cmd.RegisterFlagCompletionFunc("namespace",
		func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			cs, err := f.KubernetesClientSet()
			if err != nil {
				return nil, cobra.ShellCompDirectiveError
			}
			l, err := cs.CoreV1().Namespaces().List(cmd.Context(), metav1.ListOptions{})
			if err != nil {
				return nil, cobra.ShellCompDirectiveError
			}
			var out []string
			for _, n := range l.Items {
				if strings.HasPrefix(n.Name, toComplete) {
					out = append(out, n.Name)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}))
	fromKubeconfig := func(pick func(contexts, clusters, users []string) []string) cobra.CompletionFunc {
		return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			raw, err := f.ToRawKubeConfigLoader().RawConfig()
			if err != nil {
				return nil, cobra.ShellCompDirectiveError
			}
			var contexts, clusters, users []string
			for n := range raw.Contexts {
				contexts = append(contexts, n)
			}
			for n := range raw.Clusters {
				clusters = append(clusters, n)
			}
			for n := range raw.AuthInfos {
				users = append(users, n)
			}
			var out []string
			for _, n := range pick(contexts, clusters, users) {
				if strings.HasPrefix(n, toComplete) {
					out = append(out, n)
				}
			}
			sort.Strings(out)
			return out, cobra.ShellCompDirectiveNoFileComp
		}
	}
	cmdutil.CheckErr(cmd.RegisterFlagCompletionFunc("context", fromKubeconfig(func(c, _, _ []string) []string { return c })))
	cmdutil.CheckErr(cmd.RegisterFlagCompletionFunc("cluster", fromKubeconfig(func(_, c, _ []string) []string { return c })))
	cmdutil.CheckErr(cmd.RegisterFlagCompletionFunc("user", fromKubeconfig(func(_, _, u []string) []string { return u })))
}
