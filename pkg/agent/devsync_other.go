//go:build !linux

package agent

import (
	"log/slog"

	"github.com/kubectl-dev/kubectl-dev/pkg/sshserver"
)

// registerDevsync: the agent only runs on Linux.
func registerDevsync(*sshserver.Server, *slog.Logger) {}
