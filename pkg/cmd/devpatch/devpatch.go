// Package devpatch is the cobra layer of "kubectl devpatch": flags, argument
// parsing and output. The patching itself lives in pkg/patcher.
package devpatch

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/wire"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/kubernetes"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/scheme"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/cli"
	"github.com/kubectl-dev/kubectl-dev/pkg/cmd/complete"
	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
	"github.com/kubectl-dev/kubectl-dev/pkg/kubectlcmd"
	"github.com/kubectl-dev/kubectl-dev/pkg/patcher"
)

var (
	patchLong = templates.LongDesc(`
		Inject the devagent sidecar into a workload so that "kubectl devssh" and
		"kubectl devsync" can work inside its pods.

		TYPE is a workload with a pod template (deployment, statefulset, daemonset,
		replicaset, cronjob, short names as kubectl accepts them), a job or a pod. The patch is applied
		with server-side apply under a field manager of its own ("devpatch"): it sets
		shareProcessNamespace, adds the agent container, a read-only volume from the
		Secret NAME-devagent (the agent's SSH host key and your public key) and a few
		annotations. "kubectl devpatch --remove" applies an empty object with the same
		field manager, so exactly those fields go away, unless another field manager
		also set them. A CronJob is patched in its job template: the Jobs it starts
		from then on carry the agent. A bare pod, and the running pods of a Job (whose
		pod template cannot change), get the agent as an ephemeral container, which
		cannot be removed.

		--mode picks how the agent reaches the app's files: same-user (the app's uid and
		gid, no capabilities; Pod Security "restricted"), root (for a root app;
		"baseline") or ptrace (SYS_PTRACE, any app; "privileged" only). auto, the
		default, picks same-user or root from the target's securityContext.

		See docs/devpatch.md for the RBAC it needs and how it lives with GitOps.`)

	patchExample = templates.Examples(`
		# Add the agent to the pods of a deployment, then wait until they are ready
		kubectl devpatch deploy/demo

		# Target a container other than the default one
		kubectl devpatch deploy/demo -c app

		# Show the change to the pod template without making it
		kubectl devpatch deploy/demo --diff --dry-run=server

		# Print what would be applied
		kubectl devpatch sts/db --dry-run=client -o yaml

		# Add the agent to a bare pod, as an ephemeral container
		kubectl devpatch pod/debug-me

		# Add the agent to the Jobs a CronJob starts from now on
		kubectl devpatch cronjob/nightly

		# Add the agent to the running pods of a Job, as ephemeral containers
		kubectl devpatch job/nightly-28871234

		# List the patched workloads of all namespaces
		kubectl devpatch --list -A

		# Remove the agent again
		kubectl devpatch --remove deploy/demo`)
)

// PatchOptions holds the flags and the wiring of kubectl devpatch.
type PatchOptions struct {
	PrintFlags *genericclioptions.PrintFlags
	genericiooptions.IOStreams

	Container      string
	ContainerName  string
	Image          string
	Mode           string
	Identity       string
	FieldManager   string
	ForceConflicts bool
	Diff           bool
	Wait           bool
	Timeout        time.Duration
	Remove         bool
	List           bool
	AllNamespaces  bool
	Supervise      bool
	Command        []string

	// Filled by Complete (tests may set them first).
	Namespace      string
	ExplicitNS     bool
	DryRunStrategy cmdutil.DryRunStrategy
	// Remedy holds the flags the commands this run suggests repeat.
	Remedy         kubectlcmd.Flags
	Kind           patcher.Kind
	Name           string
	Client         kubernetes.Interface
	Mapper         meta.RESTMapper
	KeyDir         string
	LoadIdentity   func() (*keys.Identity, error)
	Getenv         func(string) string
	printer        printers.ResourcePrinter
	warningPrinter *printers.WarningPrinter
	parsedMode     patcher.Mode
}

// NewPatchOptions returns the options with kubectl devpatch's defaults.
func NewPatchOptions(streams genericiooptions.IOStreams) *PatchOptions {
	return &PatchOptions{
		PrintFlags:    genericclioptions.NewPrintFlags("patched").WithTypeSetter(scheme.Scheme),
		IOStreams:     streams,
		ContainerName: wire.DefaultAgentContainer,
		Mode:          string(patcher.ModeAuto),
		FieldManager:  patcher.DefaultFieldManager,
		Wait:          true,
		Timeout:       5 * time.Minute,
	}
}

// NewCmdDevPatch returns the root command of "kubectl devpatch".
func NewCmdDevPatch(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmd(f, NewPatchOptions(streams))
}

// newCmd builds the command around o, which tests prepare with fakes.
func newCmd(f cmdutil.Factory, o *PatchOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:                   "devpatch TYPE/NAME [-c CONTAINER] [flags]",
		DisableFlagsInUseLine: true,
		Short:                 "Inject the devagent sidecar into a workload, reversibly",
		Long:                  patchLong,
		Example:               patchExample,
		ValidArgsFunction:     complete.WorkloadArg(f, 0),
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
	o.AddFlags(cmd)
	return cmd
}

// AddFlags binds the flags to the options.
func (o *PatchOptions) AddFlags(cmd *cobra.Command) {
	flags := cmd.Flags()
	cmdutil.AddContainerVarFlags(cmd, &o.Container, o.Container)
	flags.Lookup("container").Usage = "The app container the agent serves; default: the pod's kubectl.kubernetes.io/default-container annotation, else the first container."
	flags.StringVar(&o.Image, "image", o.Image, fmt.Sprintf("The agent image (default: $%s, else %s).", patcher.ImageEnv, patcher.DefaultImage()))
	flags.StringVar(&o.ContainerName, "container-name", o.ContainerName, "The name of the agent container.")
	flags.StringVar(&o.Mode, "mode", o.Mode, "How the agent reaches the app's files: auto, same-user, root or ptrace.")
	flags.StringVar(&o.Identity, "identity", o.Identity, "Your SSH key (private key, or public key file) to authorize; default: the key pair in the kubectl-dev folder beside your kubeconfig, created on first use.")
	cmdutil.AddFieldManagerFlagVar(cmd, &o.FieldManager, o.FieldManager)
	flags.BoolVar(&o.ForceConflicts, "force-conflicts", o.ForceConflicts, "Take over fields that another field manager set to another value (e.g. shareProcessNamespace: false).")
	cmdutil.AddDryRunFlag(cmd)
	o.PrintFlags.AddFlags(cmd)
	flags.BoolVar(&o.Diff, "diff", o.Diff, "Show the change to the live pod template (with --dry-run=server, only show it).")
	flags.BoolVar(&o.Wait, "wait", o.Wait, "Wait for the rollout and until the agent is ready in the new pods.")
	flags.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long --wait waits.")
	flags.BoolVar(&o.Remove, "remove", o.Remove, "Remove what devpatch added (an empty apply by the same field manager) and the agent's Secret.")
	flags.BoolVar(&o.List, "list", o.List, "List the patched workloads of the namespace.")
	flags.BoolVarP(&o.AllNamespaces, "all-namespaces", "A", o.AllNamespaces, "With --list, list the patched workloads of all namespaces.")
	flags.BoolVar(&o.Supervise, "supervise", o.Supervise, "Also run the app container's command under the agent's supervisor (copied in by an init container), so that kubectl devsync --restart restarts the app without restarting the container. --remove undoes it.")
	flags.StringArrayVar(&o.Command, "command", o.Command, "With --supervise, the app's command line (one flag per word), when neither the container's command/args nor its image's configuration give it.")
}

// Complete resolves the target, the namespace, the clients and the key folder.
func (o *PatchOptions) Complete(f cmdutil.Factory, cmd *cobra.Command, args []string) error {
	var err error
	if o.Namespace == "" {
		if o.Namespace, o.ExplicitNS, err = f.ToRawKubeConfigLoader().Namespace(); err != nil {
			return err
		}
	}
	o.Remedy = cli.RemedyFlagsFor(cmd, o.Namespace, o.ExplicitNS)
	if o.DryRunStrategy, err = cmdutil.GetDryRunStrategy(cmd); err != nil {
		return err
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Image == "" {
		o.Image = o.Getenv(patcher.ImageEnv)
	}
	if o.Image == "" {
		o.Image = patcher.DefaultImage()
	}
	if o.PrintFlags.OutputFormat != nil && *o.PrintFlags.OutputFormat != "" {
		if o.printer, err = o.PrintFlags.ToPrinter(); err != nil {
			return err
		}
	}
	o.warningPrinter = printers.NewWarningPrinter(o.ErrOut, printers.WarningPrinterOptions{Color: printers.AllowsColorOutput(o.ErrOut)})

	if o.List {
		if len(args) > 0 {
			return cmdutil.UsageErrorf(cmd, "--list takes no TYPE/NAME")
		}
	} else {
		target, err := cli.ParseTarget(args)
		if err != nil {
			return cmdutil.UsageErrorf(cmd, "%s", err.Error())
		}
		o.Name = target.Name
		if o.Mapper == nil {
			if o.Mapper, err = f.ToRESTMapper(); err != nil {
				return err
			}
		}
		if o.Kind, err = cli.ResolveKind(o.Mapper, target.Type); err != nil {
			return err
		}
	}
	if o.Client == nil {
		cs, err := f.KubernetesClientSet()
		if err != nil {
			return err
		}
		o.Client = cs
	}
	if o.KeyDir == "" {
		o.KeyDir = keys.Dir(f.ToRawKubeConfigLoader().ConfigAccess().GetDefaultFilename(), "")
	}
	if o.LoadIdentity == nil {
		o.LoadIdentity = func() (*keys.Identity, error) {
			if o.Identity != "" {
				return keys.LoadIdentity(o.Identity)
			}
			return keys.LoadOrCreate(o.KeyDir, "kubectl-dev@"+hostname())
		}
	}
	return nil
}

// Validate checks the flags and their combinations.
func (o *PatchOptions) Validate() error {
	if err := patcher.ValidateFieldManager(o.FieldManager); err != nil {
		return err
	}
	m, err := patcher.ParseMode(o.Mode)
	if err != nil {
		return err
	}
	o.parsedMode = m
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, not %s", o.Timeout)
	}
	if o.ContainerName == "" {
		return fmt.Errorf("--container-name must not be empty")
	}
	if o.AllNamespaces && !o.List {
		return fmt.Errorf("-A/--all-namespaces only works with --list")
	}
	if o.List && (o.Remove || o.printer != nil || o.Diff) {
		return fmt.Errorf("--list cannot be combined with --remove, -o or --diff")
	}
	if o.Remove && o.printer != nil {
		return fmt.Errorf("-o only works when patching, not with --remove")
	}
	if o.Remove && o.Kind == patcher.KindPod {
		return fmt.Errorf("pod/%s: ephemeral containers cannot be removed; delete the pod to get rid of the agent (its controller, if any, creates a new one without it)", o.Name)
	}
	if o.Remove && o.Kind == patcher.KindJob {
		return fmt.Errorf("job/%s: its pods got the agent as ephemeral containers, which cannot be removed; it goes away when they end (or delete them)", o.Name)
	}
	if o.Supervise && (o.Kind == patcher.KindJob || o.Kind == patcher.KindCronJob) {
		return fmt.Errorf("%s: --supervise works on deployments, statefulsets, daemonsets and replicasets: patch without it", o.Kind.Short(o.Name))
	}
	if (o.Remove || o.List) && (o.Supervise || len(o.Command) > 0) {
		return fmt.Errorf("--supervise and --command only work when patching (--remove undoes --supervise)")
	}
	if len(o.Command) > 0 && !o.Supervise {
		return fmt.Errorf("--command only works with --supervise")
	}
	if o.Supervise && o.Kind == patcher.KindPod {
		return fmt.Errorf("pod/%s: --supervise changes the app container's command, which a running pod cannot: patch its workload", o.Name)
	}
	if o.Remove && (o.Identity != "" || o.ForceConflicts) {
		return fmt.Errorf("--identity and --force-conflicts do not apply to --remove")
	}
	return nil
}

// Run patches, removes or lists.
func (o *PatchOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	p := &patcher.Patcher{Client: o.Client, Status: o.ErrOut, Warn: func(s string) { o.warningPrinter.Print(s) }, Remedy: o.Remedy}
	if o.List {
		return o.runList(ctx, p)
	}
	cfg := patcher.Config{
		Namespace:        o.Namespace,
		Kind:             o.Kind,
		Name:             o.Name,
		TargetContainer:  o.Container,
		AgentContainer:   o.ContainerName,
		Image:            o.Image,
		Mode:             o.parsedMode,
		FieldManager:     o.FieldManager,
		ForceConflicts:   o.ForceConflicts,
		DryRun:           patcher.DryRun(o.DryRunStrategy),
		Diff:             o.Diff,
		Wait:             o.Wait,
		Timeout:          o.Timeout,
		Supervise:        o.Supervise,
		SuperviseCommand: o.Command,
	}
	if o.Remove {
		return o.runRemove(ctx, p, cfg)
	}
	id, err := o.LoadIdentity()
	if err != nil {
		return fmt.Errorf("--identity: %w", err)
	}
	if id.Created {
		fmt.Fprintf(o.ErrOut, "Created your SSH key pair %s (%s), shared by kubectl devpatch, devssh and devsync\n", id.Path, id.Fingerprint)
	}
	cfg.AuthorizedKeys = []string{id.PublicKey}
	res, err := p.Patch(ctx, cfg)
	if res != nil && o.printer == nil && res.Diff != "" {
		fmt.Fprint(o.Out, res.Diff)
	}
	if err != nil {
		return err
	}
	if o.printer != nil {
		return o.printer.PrintObj(&unstructured.Unstructured{Object: res.Applied}, o.Out)
	}
	verb := "patched"
	switch {
	case res.Kind == patcher.KindJob && res.Reused && !res.Ephemeral:
		verb = "unchanged (its pod template carries the agent)"
	case res.Kind == patcher.KindJob && res.Reused:
		verb = fmt.Sprintf("unchanged (the ephemeral agent is already in pod/%s)", strings.Join(res.Pods, ", pod/"))
	case res.Kind == patcher.KindJob:
		verb = fmt.Sprintf("patched (ephemeral agent in its running pod/%s)", strings.Join(res.Pods, ", pod/"))
	case res.Ephemeral && res.Reused:
		verb = "unchanged (the ephemeral agent is already there)"
	case res.Ephemeral:
		verb = "patched (ephemeral agent added)"
	case !res.Changed && o.DryRunStrategy != cmdutil.DryRunClient:
		verb = "unchanged"
	}
	fmt.Fprintf(o.Out, "%s %s%s\n", res.Ref, verb, dryRunSuffix(o.DryRunStrategy))
	if o.DryRunStrategy == cmdutil.DryRunNone {
		o.printNext(o.Out, res)
	}
	return nil
}

func (o *PatchOptions) printNext(w io.Writer, res *patcher.Result) {
	target := res.Kind.Short(res.Name)
	if res.Kind == patcher.KindCronJob {
		// A CronJob has no pods of its own: its Jobs do.
		fmt.Fprintf(w, "Next, once it has started a Job (or start one: %s):\n  %s\n  %s\n",
			o.Remedy.Command("create", "job", "NAME", "--from="+target),
			o.Remedy.Command("devssh", "job/NAME"), o.Remedy.Command("devsync", "./src", "job/NAME"))
	} else {
		fmt.Fprintf(w, "Next:\n  %s\n  %s\n", o.Remedy.Command("devssh", target), o.Remedy.Command("devsync", "./src", target))
	}
	if !res.Ephemeral && res.Kind != patcher.KindJob {
		undo := []string{"--remove", target}
		if o.FieldManager != patcher.DefaultFieldManager {
			// Only the manager that patched can remove what it owns.
			undo = append(undo, "--field-manager="+o.FieldManager)
		}
		fmt.Fprintf(w, "Undo with: %s\n", o.Remedy.Command("devpatch", undo...))
	}
}

func (o *PatchOptions) runRemove(ctx context.Context, p *patcher.Patcher, cfg patcher.Config) error {
	res, err := p.Remove(ctx, cfg)
	if res != nil && res.Diff != "" {
		fmt.Fprint(o.Out, res.Diff)
	}
	if res == nil {
		return err
	}
	suffix := dryRunSuffix(o.DryRunStrategy)
	would := ""
	if o.DryRunStrategy != cmdutil.DryRunNone {
		would = "would be "
	}
	if len(res.Removed) == 0 && len(res.Kept) == 0 {
		fmt.Fprintf(o.Out, "%s: nothing to remove: field manager %q owns no field of it%s\n", res.Ref, cfg.FieldManager, suffix)
	} else {
		if len(res.Removed) > 0 {
			fmt.Fprintf(o.Out, "%s: %sremoved %s%s\n", res.Ref, would, joinUnits(res.Removed), suffix)
		}
		for _, k := range res.Kept {
			fmt.Fprintf(o.Out, "%s: kept %s: another field manager set it too; remove it from that manager's configuration if it is not wanted\n", res.Ref, k)
		}
	}
	switch res.Secret {
	case "deleted":
		fmt.Fprintf(o.Out, "secret/%s deleted\n", wire.SecretName(cfg.Name))
	}
	return err
}

// joinUnits shortens the list of removed things: devpatch's annotations
// are named once.
func joinUnits(units []string) string {
	var out, annots []string
	for _, u := range units {
		if a, ok := strings.CutPrefix(u, "annotation "+wire.AnnotationPrefix); ok {
			annots = append(annots, a)
			continue
		}
		out = append(out, u)
	}
	if len(annots) == 1 {
		out = append(out, "annotation "+wire.AnnotationPrefix+annots[0])
	} else if len(annots) > 1 {
		sort.Strings(annots)
		out = append(out, "annotations "+wire.AnnotationPrefix+"{"+strings.Join(annots, ",")+"}")
	}
	return strings.Join(out, ", ")
}

func (o *PatchOptions) runList(ctx context.Context, p *patcher.Patcher) error {
	ns := o.Namespace
	if o.AllNamespaces {
		ns = ""
	}
	entries, err := p.List(ctx, ns)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		if o.AllNamespaces {
			fmt.Fprintln(o.ErrOut, "No patched workloads found.")
		} else {
			fmt.Fprintf(o.ErrOut, "No patched workloads found in %s namespace.\n", o.Namespace)
		}
		return nil
	}
	w := printers.GetNewTabWriter(o.Out)
	if o.AllNamespaces {
		fmt.Fprint(w, "NAMESPACE\t")
	}
	fmt.Fprintln(w, "NAME\tTARGET\tMODE\tAGENT\tAGENT VERSION")
	for _, e := range entries {
		if o.AllNamespaces {
			fmt.Fprintf(w, "%s\t", e.Namespace)
		}
		agent := e.Agent
		if e.Kind == patcher.KindPod {
			agent += " (ephemeral)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.Kind.Ref(e.Name), e.Target, e.Mode, agent, e.AgentVersion)
	}
	return w.Flush()
}

func dryRunSuffix(s cmdutil.DryRunStrategy) string {
	switch s {
	case cmdutil.DryRunClient:
		return " (dry run)"
	case cmdutil.DryRunServer:
		return " (server dry run)"
	}
	return ""
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}
