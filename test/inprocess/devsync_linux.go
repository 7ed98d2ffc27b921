package inprocess

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
	"github.com/kubectl-dev/kubectl-dev/pkg/sshserver"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncserver"
	"github.com/kubectl-dev/kubectl-dev/pkg/wire"
)

// AppRoot is a directory that stands for the app container's root file
// system: the devsync subsystem writes into it through pkg/rootfs, as the
// agent writes through /proc/<pid>/root, with /app as the app's working
// directory. Actions are recorded, not run.
type AppRoot struct {
	Dir string

	mu      sync.Mutex
	actions []syncproto.Action
}

// NewAppRoot makes the root with an empty /app.
func NewAppRoot(t testing.TB) *AppRoot {
	t.Helper()
	r := &AppRoot{Dir: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(r.Dir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	return r
}

// Subsystems is the devsync subsystem over the root, for NewAgent.
func (r *AppRoot) Subsystems() map[string]sshserver.SubsystemHandler {
	srv := syncserver.New(nil)
	return map[string]sshserver.SubsystemHandler{
		wire.SubsystemDevsync: func(ctx context.Context, ch ssh.Channel, s *sshserver.SessionInfo) error {
			if got := s.Getenv(wire.EnvContainerID); got != ContainerID {
				return syncserver.ServeError(ctx, ch, fmt.Errorf("container ID %q, want %q", got, ContainerID))
			}
			fsys, err := rootfs.OpenDir(r.Dir)
			if err != nil {
				return syncserver.ServeError(ctx, ch, err)
			}
			defer fsys.Close()
			return srv.Serve(ctx, ch, syncserver.Root{
				FS: fsys, Owner: rootfs.Owner{UID: -1, GID: -1}, Workdir: "/app", Agent: "inprocess",
				Action: func(_ context.Context, a syncproto.Action) (string, error) {
					r.mu.Lock()
					defer r.mu.Unlock()
					r.actions = append(r.actions, a)
					return "done " + a.Kind, nil
				},
			})
		},
	}
}

// Actions are the actions the sessions asked for, in order.
func (r *AppRoot) Actions() []syncproto.Action {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]syncproto.Action(nil), r.actions...)
}
