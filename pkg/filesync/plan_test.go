package filesync

import (
	"strings"
	"testing"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

func f(p string, size, mtime int64) syncproto.Entry {
	return syncproto.Entry{Path: p, Type: syncproto.TypeFile, Mode: 0o644, Size: size, MTime: mtime}
}
func d(p string) syncproto.Entry {
	return syncproto.Entry{Path: p, Type: syncproto.TypeDir, Mode: 0o755}
}
func l(p, target string) syncproto.Entry {
	return syncproto.Entry{Path: p, Type: syncproto.TypeSymlink, Mode: 0o777, Target: target}
}
func withMode(e syncproto.Entry, m uint32) syncproto.Entry { e.Mode = m; return e }

func opsString(ops []syncproto.Op) string {
	var s []string
	for _, op := range ops {
		x := op.Kind.String() + " " + op.Path
		if op.To != "" {
			x += "->" + op.To
		}
		s = append(s, x)
	}
	return strings.Join(s, "; ")
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name          string
		local, remote []syncproto.Entry
		delete        bool
		want          string
		check         string
	}{
		{"empty remote", []syncproto.Entry{d("a"), f("a/x", 1, 1), l("ln", "a/x")}, nil, false, "mkdir a; write a/x; symlink ln", ""},
		{"identical", []syncproto.Entry{d("a"), f("a/x", 1, 1)}, []syncproto.Entry{d("a"), f("a/x", 1, 1)}, false, "", ""},
		{"size differs", []syncproto.Entry{f("x", 2, 1)}, []syncproto.Entry{f("x", 1, 1)}, false, "write x", ""},
		{"mtime differs: hash", []syncproto.Entry{f("x", 1, 2)}, []syncproto.Entry{f("x", 1, 1)}, false, "", "x"},
		{"mode differs", []syncproto.Entry{withMode(f("x", 1, 1), 0o755)}, []syncproto.Entry{f("x", 1, 1)}, false, "chmod x", ""},
		{"symlink target", []syncproto.Entry{l("ln", "b")}, []syncproto.Entry{l("ln", "a")}, false, "symlink ln", ""},
		{"dir replaced by file", []syncproto.Entry{f("a", 1, 1)}, []syncproto.Entry{d("a"), f("a/x", 1, 1)}, false, "delete a; write a", ""},
		{"file replaced by dir", []syncproto.Entry{d("a"), f("a/x", 1, 1)}, []syncproto.Entry{f("a", 1, 1)}, false, "delete a; mkdir a; write a/x", ""},
		{"file replaced by symlink", []syncproto.Entry{l("a", "t")}, []syncproto.Entry{f("a", 1, 1)}, false, "symlink a", ""},
		{"remote-only kept", []syncproto.Entry{f("x", 1, 1)}, []syncproto.Entry{f("x", 1, 1), d("old"), f("old/y", 1, 1)}, false, "", ""},
		{"remote-only deleted once", []syncproto.Entry{f("x", 1, 1)}, []syncproto.Entry{f("x", 1, 1), d("old"), f("old/y", 1, 1), f("z", 1, 1)}, true, "delete old; delete z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Diff(tt.local, tt.remote, PlanOptions{Delete: tt.delete})
			got := opsString(p.Ops)
			if got != tt.want {
				t.Errorf("ops %q, want %q", got, tt.want)
			}
			var check []string
			for _, e := range p.Check {
				check = append(check, e.Path)
			}
			if strings.Join(check, ",") != tt.check {
				t.Errorf("check %q, want %q", check, tt.check)
			}
		})
	}
}

func TestResolveHashes(t *testing.T) {
	p := Diff([]syncproto.Entry{f("same", 1, 2), f("other", 1, 2)}, []syncproto.Entry{f("same", 1, 1), f("other", 1, 1)}, PlanOptions{})
	p.ResolveHashes(map[string][32]byte{"same": {1}, "other": {2}}, map[string][32]byte{"same": {1}, "other": {3}})
	if got := opsString(p.Ops); got != "write other; chtimes same" {
		t.Errorf("ops %q", got)
	}
}
