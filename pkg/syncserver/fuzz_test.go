//go:build linux

package syncserver

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// FuzzSession feeds arbitrary client streams to a served session over
// net.Pipe against a temporary app root: the session must end (with an
// error or not) once the stream does, never panic or hang, and never write
// outside the app root.
func FuzzSession(f *testing.F) {
	hello := encode(&syncproto.Hello{MinVersion: 1, MaxVersion: 1, Dest: "/app", CreateDest: true, Features: []string{syncproto.FeatureZstd}})
	cat := func(frames ...[]byte) []byte {
		return []byte(strings.Join(func() []string {
			var s []string
			for _, b := range frames {
				s = append(s, string(b))
			}
			return s
		}(), ""))
	}
	begin, commit := encode(&syncproto.Begin{ID: 1, Count: 3}), encode(&syncproto.Commit{ID: 1})
	write := encode(&syncproto.Op{Kind: syncproto.OpWrite, Path: "d/f", Mode: 0o644, Size: 5})
	f.Add(cat(hello, encode(&syncproto.ListReq{}), encode(&syncproto.HashReq{Paths: []string{"d/f"}})))
	f.Add(cat(hello, begin, encode(&syncproto.Op{Kind: syncproto.OpMkdir, Path: "d", Mode: 0o755}), write, rawFrame(syncproto.MsgData, []byte("hello")), encode(&syncproto.FileEnd{Size: 5}),
		encode(&syncproto.Op{Kind: syncproto.OpRename, Path: "d/f", To: "e/g"}), encode(&syncproto.Op{Kind: syncproto.OpSymlink, Path: "ln", Target: "/etc"}),
		encode(&syncproto.Op{Kind: syncproto.OpChmod, Path: "e/g", Mode: 0o600}), encode(&syncproto.Op{Kind: syncproto.OpDelete, Path: "e"}), commit,
		encode(&syncproto.ListReq{Path: "d"}), encode(&syncproto.Action{Kind: "restart"})))
	f.Add(cat(hello, begin, write, rawFrame(syncproto.MsgDataZstd, []byte("not zstd")), encode(&syncproto.FileEnd{Size: 5}), commit))
	f.Add(cat(hello, begin, write, encode(&syncproto.FileEnd{Size: 0, Abort: "unreadable"}), commit))
	f.Add(cat(hello, begin, encode(&syncproto.LanedOp{Seq: 1, Op: syncproto.Op{Kind: syncproto.OpWrite, Path: "f"}}), commit))
	f.Add(cat(encode(&syncproto.LaneHello{Token: "x"})))
	f.Add(cat(hello, begin, write))
	f.Add(hello[:len(hello)-2])
	appRoot := f.TempDir()
	outside := filepath.Join(appRoot, "outside")
	os.MkdirAll(filepath.Join(appRoot, "root", "app"), 0o755)
	f.Fuzz(func(t *testing.T, stream []byte) {
		fsRoot, err := rootfs.OpenDir(filepath.Join(appRoot, "root"))
		if err != nil {
			t.Fatal(err)
		}
		defer fsRoot.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		a, b := net.Pipe()
		served := make(chan error, 1)
		go func() {
			served <- New(nil).Serve(ctx, b, Root{FS: fsRoot, Owner: rootfs.Owner{UID: -1, GID: -1}, Writers: 2})
			b.Close()
		}()
		go io.Copy(io.Discard, a)
		go func() {
			a.Write(stream)
			a.Close()
		}()
		select {
		case <-served:
		case <-time.After(30 * time.Second):
			t.Fatal("the session did not end with its stream")
		}
		if _, err := os.Lstat(outside); err == nil {
			t.Fatal("the session wrote outside the app root")
		}
	})
}
