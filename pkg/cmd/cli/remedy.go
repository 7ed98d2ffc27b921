package cli

import (
	"github.com/spf13/cobra"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-dev/kubectl-dev/pkg/kubectlcmd"
)

// remedyFlags are the connection flags a remedy repeats when the user gave
// them; credentials (--token, --client-key, ...) never are.
var remedyFlags = []string{"kubeconfig", "context", "cluster", "user"}

// RemedyFlags are the flags the remedies printed by this run carry: the
// connection flags the user gave, and -n (given, or resolved to another
// namespace than "default"); see pkg/kubectlcmd.
func RemedyFlags(f cmdutil.Factory, cmd *cobra.Command) kubectlcmd.Flags {
	ns, explicit, err := f.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		ns, explicit = "", false
	}
	return RemedyFlagsFor(cmd, ns, explicit)
}

// RemedyFlagsFor is RemedyFlags with the namespace already resolved.
func RemedyFlagsFor(cmd *cobra.Command, namespace string, explicitNS bool) kubectlcmd.Flags {
	var conn []kubectlcmd.Flag
	if cmd != nil {
		for _, name := range remedyFlags {
			if fl := cmd.Flag(name); fl != nil && fl.Changed {
				conn = append(conn, kubectlcmd.Flag{Name: name, Value: fl.Value.String()})
			}
		}
	}
	return kubectlcmd.New(namespace, explicitNS, conn...)
}
