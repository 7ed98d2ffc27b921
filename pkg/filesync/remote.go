package filesync

import (
	"context"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// Remote is the destination tree a Syncer mirrors into: what it needs of a
// devsync session. *Client is the one the command uses; tests use a tree in
// memory.
type Remote interface {
	// List calls fn for every entry of the destination (or of its
	// subdirectory sub), in lexical order per directory.
	List(ctx context.Context, sub string, fn func(syncproto.Entry) error) error
	// Hash returns the SHA-256 of files; unreadable ones are missing.
	Hash(ctx context.Context, paths []string) (map[string][32]byte, error)
	// Apply applies a batch in order. The error is a failure of the
	// session; failed operations are reported in the result.
	Apply(ctx context.Context, ops []syncproto.Op, opts ApplyOptions) (*BatchResult, error)
}

var _ Remote = (*Client)(nil)
