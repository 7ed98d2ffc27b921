package cli

import (
	"os"
	"testing"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

// The flags a remedy repeats, read from a plugin's real root command as
// kubectl's own flags parse the argv.
func TestRemedyFlagsFromArgv(t *testing.T) {
	kubeconfig := t.TempDir() + "/my config"
	writeKubeconfig(t, kubeconfig)
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"--kubeconfig", kubeconfig}, "kubectl devpatch -n from-context '--kubeconfig=" + kubeconfig + "' deploy/demo"},
		{[]string{"--kubeconfig", kubeconfig, "-n", "default"}, "kubectl devpatch -n default '--kubeconfig=" + kubeconfig + "' deploy/demo"},
		{[]string{"--kubeconfig=" + kubeconfig, "--context", "other", "--namespace=dev"}, "kubectl devpatch -n dev '--kubeconfig=" + kubeconfig + "' --context=other deploy/demo"},
		// --token is a credential: never repeated.
		{[]string{"--kubeconfig", kubeconfig, "--context", "other", "--token", "s3cret"}, "kubectl devpatch '--kubeconfig=" + kubeconfig + "' --context=other deploy/demo"},
	} {
		var got string
		root := NewRoot(func(f cmdutil.Factory, _ genericiooptions.IOStreams) *cobra.Command {
			return &cobra.Command{Use: "devpatch", RunE: func(cmd *cobra.Command, _ []string) error {
				got = RemedyFlags(f, cmd).Command("devpatch", "deploy/demo")
				return nil
			}}
		}, genericiooptions.NewTestIOStreamsDiscard())
		root.SetArgs(c.argv)
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.argv, got, c.want)
		}
	}
}

// writeKubeconfig writes a kubeconfig whose current context sets the
// namespace "from-context", and a second context "other" without one.
func writeKubeconfig(t *testing.T, path string) {
	t.Helper()
	const cfg = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: main
  context: {cluster: c, user: u, namespace: from-context}
- name: other
  context: {cluster: c, user: u}
current-context: main
users:
- name: u
  user: {}
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}
