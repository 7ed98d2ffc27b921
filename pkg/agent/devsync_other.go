//go:build !linux

package agent

import (
	"github.com/kubectl-dev/kubectl-dev/pkg/sshserver"
)

// SubsystemDevsync is the SSH subsystem that kubectl devsync opens.
const SubsystemDevsync = "devsync"

// registerDevsync: the agent only runs on Linux.
func registerDevsync(*sshserver.Server) {}
