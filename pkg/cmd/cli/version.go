package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/complete"
	"github.com/kubectl-dev/kubectl-dev/pkg/kubectlcmd"
	"github.com/kubectl-dev/kubectl-dev/pkg/patcher"
	"github.com/kubectl-dev/kubectl-dev/pkg/version"
)

// VersionInfo is what "kubectl PLUGIN version -o json|yaml" prints.
type VersionInfo struct {
	Plugin PluginVersion `json:"plugin"`
	Agent  *AgentVersion `json:"agent,omitempty"`
}

// PluginVersion is the plugin binary's stamped version.
type PluginVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Date    string `json:"date"`
}

// AgentVersion is the agent recorded in a workload's pod template.
type AgentVersion struct {
	Workload  string `json:"workload"`
	Namespace string `json:"namespace"`
	Patched   bool   `json:"patched"`
	Version   string `json:"version,omitempty"`
	Image     string `json:"image,omitempty"`
	Container string `json:"container,omitempty"`
	// Skew is empty when the agent is of the plugin's version, else what to do.
	Skew string `json:"skew,omitempty"`
}

// VersionOptions are the flags and wiring of "kubectl PLUGIN version".
type VersionOptions struct {
	genericiooptions.IOStreams
	// Plugin is the command's display name: "kubectl devpatch".
	Plugin string
	Output string

	// Filled by Complete (tests may set them first).
	Namespace  string
	ExplicitNS bool
	// Remedy holds the flags the suggested commands repeat.
	Remedy kubectlcmd.Flags
	Kind   patcher.Kind
	Name   string
	Typed  string // the workload as the user typed it
	Client kubernetes.Interface
}

var versionLong = templates.LongDesc(`
	Print the plugin's version. Given a workload, also print the version of the
	devagent that "kubectl devpatch" put into it (its pod template's
	devpatch.kubectl-dev.io/agent-version annotation) and, when it differs from the
	plugin's, how to upgrade: run "kubectl devpatch TYPE/NAME" again with the
	plugin of the new version (it applies the agent of its own version).`)

// NewCmdVersion returns the "version" subcommand every plugin has.
func NewCmdVersion(f cmdutil.Factory, streams genericiooptions.IOStreams, plugin string) *cobra.Command {
	o := &VersionOptions{IOStreams: streams, Plugin: plugin}
	cmd := &cobra.Command{
		Use:                   "version [TYPE/NAME] [-o json|yaml]",
		DisableFlagsInUseLine: true,
		Short:                 "Print the plugin's version, and the agent's in a workload",
		Long:                  versionLong,
		Example: templates.Examples(`
			# The plugin's version
			` + plugin + ` version

			# The plugin's and the agent's version in deployment demo
			` + plugin + ` version deploy/demo -n demo -o yaml`),
		Args:              cobra.MaximumNArgs(2),
		ValidArgsFunction: complete.WorkloadArg(f, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(f, cmd, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Output format: json or yaml (default: text).")
	cmdutil.CheckErr(cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"json", "yaml"}, cobra.ShellCompDirectiveNoFileComp
	}))
	return cmd
}

// Complete resolves the workload, when one is given; without one it does
// not read the kubeconfig.
func (o *VersionOptions) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	target, err := ParseTarget(args)
	if err != nil {
		return cmdutil.UsageErrorf(cmd, "%s", err.Error())
	}
	o.Name, o.Typed = target.Name, target.String()
	if o.Namespace == "" {
		if o.Namespace, o.ExplicitNS, err = f.ToRawKubeConfigLoader().Namespace(); err != nil {
			return err
		}
	}
	o.Remedy = RemedyFlagsFor(cmd, o.Namespace, o.ExplicitNS)
	if o.Kind == "" {
		mapper, err := f.ToRESTMapper()
		if err != nil {
			return err
		}
		if o.Kind, err = ResolveKind(mapper, target.Type); err != nil {
			return err
		}
	}
	if o.Client == nil {
		if o.Client, err = f.KubernetesClientSet(); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks -o.
func (o *VersionOptions) Validate() error {
	switch o.Output {
	case "", "json", "yaml":
		return nil
	}
	return fmt.Errorf("--output must be json or yaml, not %q", o.Output)
}

// Run prints the versions.
func (o *VersionOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	info := VersionInfo{Plugin: PluginVersion{
		Name: strings.TrimPrefix(o.Plugin, "kubectl "), Version: version.Version, Commit: version.Commit, Date: version.Date,
	}}
	if o.Name != "" {
		a, err := patcher.ReadAgent(ctx, o.Client, o.Kind, o.Namespace, o.Name)
		if err != nil {
			return err
		}
		info.Agent = &AgentVersion{Workload: a.Ref(), Namespace: a.Namespace, Patched: a.Patched,
			Version: a.Version, Image: a.Image, Container: a.Container}
		if a.Patched {
			info.Agent.Skew = patcher.Skew(a.Version, version.Version, o.target())
		}
	}
	switch o.Output {
	case "json":
		b, err := json.MarshalIndent(info, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(info)
		if err != nil {
			return err
		}
		_, err = o.Out.Write(b)
		return err
	}
	fmt.Fprintf(o.Out, "%s %s\n", o.Plugin, version.String())
	a := info.Agent
	switch {
	case a == nil:
	case !a.Patched:
		fmt.Fprintf(o.Out, "agent in %s: none (not patched; add it with: kubectl devpatch %s)\n", a.Workload, o.target())
	default:
		fmt.Fprintf(o.Out, "agent in %s: %s (image %s, container %s)\n", a.Workload, a.Version, orNone(a.Image), a.Container)
		if a.Skew != "" {
			fmt.Fprintf(o.ErrOut, "Warning: %s\n", a.Skew)
		}
	}
	return nil
}

// target is the workload as a user types it, after the flags that remedies
// repeat (-n, --context, --kubeconfig; see RemedyFlags).
func (o *VersionOptions) target() string {
	remedy := o.Remedy
	if remedy.Args() == nil && o.ExplicitNS {
		remedy = kubectlcmd.New(o.Namespace, true)
	}
	return strings.TrimPrefix(remedy.Command("devpatch", o.Kind.Short(o.Name)), "kubectl devpatch ")
}

func orNone(s string) string {
	if s == "" {
		return "none: the agent container is missing"
	}
	return s
}
