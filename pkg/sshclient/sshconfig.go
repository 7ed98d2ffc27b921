package sshclient

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// OpenSSH is what an ssh_config block for one workload needs.
type OpenSSH struct {
	// Alias is the Host name (e.g. demo.default.kdev), also the HostKeyAlias.
	Alias string
	// ProxyCommand is the argv of "kubectl devssh --stdio ...".
	ProxyCommand []string
	IdentityFile string
	// KnownHostsFile holds the pinned host key under Alias.
	KnownHostsFile string
	HostKey        ssh.PublicKey
	// Comment heads the block.
	Comment string
}

// Alias is the ssh host alias of a workload: NAME.NAMESPACE.kdev for a
// Deployment, KIND-NAME.NAMESPACE.kdev for other kinds.
func Alias(kind, name, namespace string) string {
	k := strings.ToLower(kind)
	if k == "deployment" || k == "" {
		return name + "." + namespace + ".kdev"
	}
	return k + "-" + name + "." + namespace + ".kdev"
}

// Dir is the folder of devssh's OpenSSH files: ~/.ssh/kubectl-dev.
func Dir(home string) string {
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".ssh", "kubectl-dev")
}

// KnownHostsLine is the known_hosts line that pins key under alias.
func KnownHostsLine(alias string, key ssh.PublicKey) string {
	return knownhosts.Line([]string{alias}, key)
}

// Block is the ssh_config block.
func (o OpenSSH) Block() string {
	var b strings.Builder
	if o.Comment != "" {
		for _, l := range strings.Split(o.Comment, "\n") {
			fmt.Fprintf(&b, "# %s\n", l)
		}
	}
	fmt.Fprintf(&b, "Host %s\n", o.Alias)
	fmt.Fprintf(&b, "  HostName %s\n", o.Alias)
	fmt.Fprintf(&b, "  User %s\n", User)
	fmt.Fprintf(&b, "  ProxyCommand %s\n", QuoteCommand(o.ProxyCommand))
	fmt.Fprintf(&b, "  IdentityFile %s\n", configQuote(o.IdentityFile))
	fmt.Fprintf(&b, "  IdentitiesOnly yes\n")
	fmt.Fprintf(&b, "  UserKnownHostsFile %s\n", configQuote(o.KnownHostsFile))
	fmt.Fprintf(&b, "  HostKeyAlias %s\n", o.Alias)
	fmt.Fprintf(&b, "  StrictHostKeyChecking yes\n")
	fmt.Fprintf(&b, "  PreferredAuthentications publickey\n")
	fmt.Fprintf(&b, "  ServerAliveInterval 15\n")
	fmt.Fprintf(&b, "  ServerAliveCountMax 3\n")
	return b.String()
}

// SSHArgs are the ssh options equivalent to Block, for running ssh
// without a config file (--ssh).
func (o OpenSSH) SSHArgs() []string {
	return []string{
		"-o", "ProxyCommand=" + QuoteCommand(o.ProxyCommand),
		"-o", "IdentityFile=" + o.IdentityFile,
		"-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + o.KnownHostsFile,
		"-o", "HostKeyAlias=" + o.Alias,
		"-o", "StrictHostKeyChecking=yes",
		"-o", "PreferredAuthentications=publickey",
		"-o", "ServerAliveInterval=15",
		"-o", "ServerAliveCountMax=3",
		"-l", User,
	}
}

// WriteKnownHosts writes the pinned host key file (0600, folder 0700).
func (o OpenSSH) WriteKnownHosts() error {
	if err := os.MkdirAll(filepath.Dir(o.KnownHostsFile), 0o700); err != nil {
		return err
	}
	return writeAtomic(o.KnownHostsFile, []byte(KnownHostsLine(o.Alias, o.HostKey)+"\n"), 0o600)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// WriteConfig writes the block to its own file and returns the file.
func (o OpenSSH) WriteConfig(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	p := filepath.Join(dir, o.Alias+".conf")
	return p, writeAtomic(p, []byte(o.Block()), 0o600)
}

func configQuote(s string) string {
	if strings.ContainsAny(s, " \t\"") {
		return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
	}
	return s
}
