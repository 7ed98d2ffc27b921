package cli

import (
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-dev/kubectl-dev/pkg/keys"
)

// Clients is what the plugins that talk to the agent (devssh, devsync) take
// from kubectl's factory: the namespace, the clients and the folder of the
// user's key pair beside the kubeconfig.
type Clients struct {
	Namespace string
	// ExplicitNS is whether the user gave -n.
	ExplicitNS bool
	RESTConfig *rest.Config
	Client     kubernetes.Interface
	KeyDir     string
}

// ClientsFrom reads Clients from the factory (--kubeconfig, --context, -n ...).
func ClientsFrom(f cmdutil.Factory) (Clients, error) {
	var c Clients
	var err error
	if c.Namespace, c.ExplicitNS, err = f.ToRawKubeConfigLoader().Namespace(); err != nil {
		return c, err
	}
	if c.RESTConfig, err = f.ToRESTConfig(); err != nil {
		return c, err
	}
	if c.Client, err = f.KubernetesClientSet(); err != nil {
		return c, err
	}
	c.KeyDir = keys.Dir(f.ToRawKubeConfigLoader().ConfigAccess().GetDefaultFilename(), "")
	return c, nil
}
