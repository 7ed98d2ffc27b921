package agentlog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNewWritesLevelMsgAttrsNoTime(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, slog.LevelInfo)
	l.Debug("hidden")
	l.Info("connection", "remote", "127.0.0.1:4242", "user", "devssh")
	l.Warn("auth refused", "err", errors.New("key SHA256:x is not authorized"))
	want := `level=INFO msg=connection remote=127.0.0.1:4242 user=devssh
level=WARN msg="auth refused" err="key SHA256:x is not authorized"
`
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestOrDiscard(t *testing.T) {
	OrDiscard(nil).Error("dropped") // must not panic
	l := New(&bytes.Buffer{}, slog.LevelInfo)
	if OrDiscard(l) != l {
		t.Fatal("OrDiscard replaced a logger")
	}
}

func TestParseLevel(t *testing.T) {
	// " error ": surrounding spaces are trimmed.
	for _, c := range []struct {
		in   string
		want slog.Level
	}{{"", slog.LevelInfo}, {"debug", slog.LevelDebug}, {"WARN", slog.LevelWarn}, {" error ", slog.LevelError}} {
		if got, err := ParseLevel(c.in); err != nil || got != c.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	if _, err := ParseLevel("loud"); err == nil || !strings.Contains(err.Error(), "debug, info, warn or error") {
		t.Errorf("ParseLevel(loud) = %v", err)
	}
}

func TestLineWriter(t *testing.T) {
	var buf bytes.Buffer
	w := NewLineWriter(New(&buf, slog.LevelDebug).With("session", 3), slog.LevelWarn, "sftp helper")
	fmt.Fprintf(w, "sftp-in-app: %s\n", "first")
	w.Write([]byte("sec"))
	w.Write([]byte("ond\r\n\nthird"))
	if got := strings.Count(buf.String(), "\n"); got != 2 {
		t.Fatalf("%d lines before Close:\n%s", got, buf.String())
	}
	w.Close()
	want := `level=WARN msg="sftp helper" session=3 line="sftp-in-app: first"
level=WARN msg="sftp helper" session=3 line=second
level=WARN msg="sftp helper" session=3 line=third
`
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
	// A line longer than maxLine is cut, not kept whole.
	buf.Reset()
	w.Write(bytes.Repeat([]byte("x"), 3*maxLine))
	w.Write([]byte("\n"))
	if n := strings.Count(buf.String(), "x"); n != maxLine {
		t.Fatalf("a long line kept %d bytes, want %d", n, maxLine)
	}
}
