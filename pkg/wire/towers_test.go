package wire_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/kubectl-dev/kubectl-dev/"

// The two towers: the laptop's binaries and the agent's import nothing of
// each other; both stand on the shared packages (wire, syncproto, keys,
// version, ...). What each binary links is read from go list -deps, so a
// new import anywhere below a main package is caught here.
var towers = []struct {
	main      string
	forbidden []string
}{
	{"cmd/kubectl-devpatch", agentSide},
	{"cmd/kubectl-devssh", agentSide},
	{"cmd/kubectl-devsync", agentSide},
	{"cmd/devagent", laptopSide},
}

var agentSide = []string{"pkg/agent", "pkg/agentlog", "pkg/sshserver", "pkg/syncserver", "pkg/rootfs", "pkg/approc", "pkg/supervisor"}

var laptopSide = []string{"pkg/cmd", "pkg/patcher", "pkg/agentconn", "pkg/sshclient", "pkg/portforward", "pkg/filesync", "pkg/syncengine", "pkg/kubectlcmd", "pkg/jobstatus",
	"k8s.io/client-go", "k8s.io/kubectl", "github.com/spf13/cobra"}

func TestTowers(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	for _, tw := range towers {
		t.Run(tw.main, func(t *testing.T) {
			for _, goos := range []string{"linux", "darwin", "windows"} {
				cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../../"+tw.main)
				cmd.Env = append(cmd.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
				b, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("go list -deps %s (GOOS=%s): %v\n%s", tw.main, goos, err, b)
				}
				deps := strings.Fields(string(b))
				if len(deps) < 10 {
					t.Fatalf("go list -deps %s gave %d packages: %q", tw.main, len(deps), deps)
				}
				for _, dep := range deps {
					for _, f := range tw.forbidden {
						p := f
						if strings.HasPrefix(f, "pkg/") {
							p = module + f
						}
						if dep == p || strings.HasPrefix(dep, p+"/") {
							t.Errorf("%s links %s (GOOS=%s): laptop and agent code import nothing of each other; move what both need into a shared package such as pkg/wire", tw.main, dep, goos)
						}
					}
				}
			}
		})
	}
}
