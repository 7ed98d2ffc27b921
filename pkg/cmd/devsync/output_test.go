package devsync

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 12 * 1024: "12 KiB", 1536 * 1024: "1.5 MiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for _, c := range []struct {
		sum  filesync.Summary
		want string
	}{
		{filesync.Summary{Files: 3, Bytes: 12 * 1024, Duration: 18 * time.Millisecond}, "synced 3 files, 12 KiB, in 18 ms"},
		{filesync.Summary{Duration: 1500 * time.Millisecond}, "up to date, checked in 1.5 s"},
		{filesync.Summary{Deleted: 2, Renamed: 1, Duration: time.Millisecond}, "synced 1 renamed, 2 deleted, in 1 ms"},
		{filesync.Summary{Errors: []syncproto.ItemError{{}, {}}, Duration: time.Millisecond}, "nothing synced, 2 failed, in 1 ms"},
	} {
		if got := summaryLine(&c.sum); got != c.want {
			t.Errorf("summaryLine(%+v) = %q, want %q", c.sum, got, c.want)
		}
	}
	var b bytes.Buffer
	summaryDetail(&b, &filesync.Summary{Items: []filesync.Item{
		{Op: syncproto.OpWrite, Path: "a b.txt", Bytes: 2048},
		{Op: syncproto.OpRename, Path: "x", To: "y"},
		{Op: syncproto.OpWrite, Path: "bad", Err: "permission denied"},
	}})
	for _, want := range []string{"2.0 KiB", "x -> y", "bad: permission denied"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("detail lacks %q:\n%s", want, b.String())
		}
	}
}

func TestCachesOutput(t *testing.T) {
	sum := &filesync.Summary{
		Items:         []filesync.Item{{Op: syncproto.OpWrite, Path: "pkg/m.py", Bytes: 5}},
		CachesRemoved: []string{"/app/pkg/__pycache__/m.cpython-311.pyc", "/app/pkg/__pycache__/m.\x1b[2J.pyc"},
		Racy:          []string{"/app/lib/x.rb"},
		CachesOmitted: 2,
	}
	var detail, notes bytes.Buffer
	summaryDetail(&detail, sum)
	racyNotes(&notes, sum)
	want := "  write   pkg/m.py (5 B)\n" +
		"  remove  /app/pkg/__pycache__/m.cpython-311.pyc (stale cache)\n" +
		"  remove  \"/app/pkg/__pycache__/m.\\x1b[2J.pyc\" (stale cache)\n"
	if detail.String() != want {
		t.Errorf("detail:\n%s\nwant:\n%s", detail.String(), want)
	}
	if n := notes.String(); !strings.Contains(n, "note: /app/lib/x.rb was replaced by a file of the same size and mtime second") || !strings.Contains(n, "left 2 stale caches") {
		t.Errorf("notes:\n%s", n)
	}
}
