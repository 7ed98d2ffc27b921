package link

import (
	"fmt"
	"net"
	"net/url"

	"k8s.io/client-go/tools/clientcmd"
)

// WriteKubeconfig copies the kubeconfig src to dst with every cluster's
// server sent through the link at addr (host:port). The TLS server name
// stays the API server's own host, so that its certificate verifies
// unchanged.
func WriteKubeconfig(src, dst, addr string) error {
	cfg, err := clientcmd.LoadFromFile(src)
	if err != nil {
		return fmt.Errorf("reading kubeconfig %s: %w", src, err)
	}
	if len(cfg.Clusters) == 0 {
		return fmt.Errorf("kubeconfig %s names no cluster", src)
	}
	for name, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil || u.Host == "" {
			return fmt.Errorf("kubeconfig %s: cluster %s: server %q is not a URL", src, name, c.Server)
		}
		host, _, err := net.SplitHostPort(u.Host)
		if err != nil {
			host = u.Hostname()
		}
		lhost, _, _ := net.SplitHostPort(addr)
		if c.TLSServerName == "" && host != lhost {
			c.TLSServerName = host
		}
		u.Host = addr
		c.Server = u.String()
	}
	if err := clientcmd.WriteToFile(*cfg, dst); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", dst, err)
	}
	return nil
}

// Upstream returns the host:port of the current context's server in the
// kubeconfig at path: what a link put in front of that cluster forwards to.
func Upstream(path string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return "", fmt.Errorf("reading kubeconfig %s: %w", path, err)
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return "", fmt.Errorf("kubeconfig %s: no current context", path)
	}
	c, ok := cfg.Clusters[ctx.Cluster]
	if !ok {
		return "", fmt.Errorf("kubeconfig %s: context %s names no known cluster", path, cfg.CurrentContext)
	}
	u, err := url.Parse(c.Server)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("kubeconfig %s: server %q is not a URL", path, c.Server)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "443"), nil
	}
	return u.Host, nil
}
