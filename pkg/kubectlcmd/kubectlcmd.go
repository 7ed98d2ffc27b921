// Package kubectlcmd writes the kubectl command lines that errors and hints
// print as remedies ("run kubectl devpatch -n dev deploy/demo first"), so
// that pasting one works on the same cluster and namespace as the command
// that printed it.
//
// Flags holds the connection flags the user gave (--kubeconfig, --context,
// --cluster, --user) and -n: the one the user gave, else the namespace the
// kubeconfig resolved when it is not "default", as kubectl's own hints
// ("kubectl describe pod/x -n dev") name it. Credentials (--token, keys,
// passwords) are never repeated. The engines that print remedies take a
// Flags; the zero value prints plain "kubectl PLUGIN ARGS".
package kubectlcmd

import (
	"strings"
)

// Flags are the flags every remedy repeats, in order, as "--name=value"
// words or as "-n", "NAMESPACE".
type Flags struct {
	args []string
}

// New builds the flags: namespace is the resolved namespace and explicitNS
// whether the user gave -n; conn holds the connection flags the user gave,
// flag name (without dashes) to value, in the order they are printed.
func New(namespace string, explicitNS bool, conn ...Flag) Flags {
	var f Flags
	for _, c := range conn {
		if c.Value != "" {
			f.args = append(f.args, "--"+c.Name+"="+c.Value)
		}
	}
	if namespace != "" && (explicitNS || namespace != "default") {
		f.args = append([]string{"-n", namespace}, f.args...)
	}
	return f
}

// Flag is one connection flag the user gave.
type Flag struct{ Name, Value string }

// Args are the flags as words.
func (f Flags) Args() []string { return append([]string(nil), f.args...) }

// String is the flags as shell words, e.g. "-n dev --context=kind"; "" for none.
func (f Flags) String() string {
	words := make([]string, len(f.args))
	for i, w := range f.args {
		words[i] = Quote(w)
	}
	return strings.Join(words, " ")
}

// Command is "kubectl PLUGIN FLAGS ARGS..." with every word quoted for a
// POSIX shell where it needs to be.
func (f Flags) Command(plugin string, args ...string) string {
	words := append([]string{"kubectl", plugin}, f.args...)
	words = append(words, args...)
	for i, w := range words {
		words[i] = Quote(w)
	}
	return strings.Join(words, " ")
}

// Kubectl is one of kubectl's own commands, "kubectl ARGS... FLAGS", with
// the flags after the words (as "kubectl rollout resume deploy/demo -n dev").
func (f Flags) Kubectl(args ...string) string {
	words := append([]string{"kubectl"}, args...)
	words = append(words, f.args...)
	for i, w := range words {
		words[i] = Quote(w)
	}
	return strings.Join(words, " ")
}

// Quote quotes a word for a POSIX shell when it holds anything but
// letters, digits and -_./=:,@+%.
func Quote(w string) string {
	if w == "" {
		return "''"
	}
	safe := true
	for _, r := range w {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@+%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}
