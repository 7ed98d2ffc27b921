package devsync

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func TestProgressFlag(t *testing.T) {
	for _, c := range []struct {
		mode  string
		quiet bool
		want  bool
	}{
		{"auto", false, false}, // stderr is a buffer, not a terminal
		{"always", false, true},
		{"always", true, true},
		{"never", false, false},
	} {
		o := NewOptions(genericiooptions.IOStreams{ErrOut: &bytes.Buffer{}})
		o.Progress, o.Quiet = c.mode, c.quiet
		if show, tty := o.progress(); show != c.want || tty {
			t.Errorf("--progress %s (quiet %v): show %v tty %v, want show %v on a buffer", c.mode, c.quiet, show, tty, c.want)
		}
	}
	o := &Options{LocalDir: t.TempDir(), PodRunningTimeout: 1, Compress: "auto", Progress: "yes"}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--progress must be auto, always or never") {
		t.Errorf("--progress yes: %v", err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestProgressBarToAPipe: off a terminal, frames are separated by carriage
// returns, carry a byte rate and a time left, and the last ends the line.
func TestProgressBarToAPipe(t *testing.T) {
	var out lockedBuffer
	p := NewProgressBar(&out, false)
	const total = 8 << 20
	p.Start(2, total)
	rate := regexp.MustCompile(`[0-9.]+ (B|KiB|MiB)/s ETA [0-9]`)
	deadline := time.Now().Add(10 * time.Second)
	sent := int64(0)
	for !rate.MatchString(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no frame with a rate and an ETA after 10 s:\n%q", out.String())
		}
		if sent < total/2 {
			p.Add(64 << 10)
			sent += 64 << 10
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.FileDone("a")
	p.Add(total - sent)
	p.FileDone("b")
	p.Finish()
	s := out.String()
	if !strings.HasPrefix(s, "\r") || strings.Count(s, "\r") < 2 {
		t.Errorf("frames are not separated by carriage returns: %q", s)
	}
	if strings.Contains(s, "\x1b[") {
		t.Errorf("colour escapes off a terminal: %q", s)
	}
	frames := strings.Split(s, "\r")
	last := frames[len(frames)-1]
	if !strings.HasSuffix(last, "\n") || !strings.Contains(last, "2/2 files") || !strings.Contains(last, "8.00 MiB / 8.00 MiB") {
		t.Errorf("last frame %q", last)
	}
}
