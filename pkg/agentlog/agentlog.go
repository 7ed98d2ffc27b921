// Package agentlog makes the *slog.Logger of the agent side: the devagent
// sidecar and "devagent supervise" in the app container. Each creates one
// logger in its main path (New) and passes it down explicitly, in config
// structs whose nil Logger means "discard" (OrDiscard); there is no
// package-level logger.
package agentlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// EnvLevel is the environment variable that sets the agent's log level
// ("debug", "info", "warn", "error"); the --log-level flag wins over it.
const EnvLevel = "DEVAGENT_LOG_LEVEL"

// New returns a logger that writes one key=value line per record
// (slog.TextHandler) to w, at level and above.
//
// The lines carry no time: the agent's stderr is a container's log, which
// the container runtime already stamps line by line (kubectl logs
// --timestamps shows it), so a second stamp would only make every line
// longer.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// OrDiscard returns l, or a logger that drops every record when l is nil.
func OrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// ParseLevel reads a level name ("debug", "info", "warn", "error", any case,
// or slog's "info+2" forms); empty is Info.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if strings.TrimSpace(s) == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return 0, fmt.Errorf("log level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

// maxLine bounds a line kept by a LineWriter; longer ones are cut.
const maxLine = 4 << 10

// LineWriter is an io.Writer that turns each line written to it into one
// record of its logger: msg, and the line's text as the attribute "line".
// It bridges what still writes text (a child process's stderr, a
// format-string callback) into the logger. It is safe for concurrent use;
// Close logs a last line that had no newline.
type LineWriter struct {
	log   *slog.Logger
	level slog.Level
	msg   string

	mu  sync.Mutex
	buf []byte
}

// NewLineWriter returns a LineWriter logging at level with msg to l (nil:
// discarded).
func NewLineWriter(l *slog.Logger, level slog.Level, msg string) *LineWriter {
	return &LineWriter{log: OrDiscard(l), level: level, msg: msg}
}

// Write implements io.Writer.
func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLine - len(w.buf)
			if len(p) > room {
				p = p[:max(room, 0)]
			}
			w.buf = append(w.buf, p...)
			break
		}
		line := p[:i]
		if len(w.buf) > 0 {
			line = append(w.buf, line...)
			w.buf = w.buf[:0]
		}
		w.emit(line)
		p = p[i+1:]
	}
	return n, nil
}

// Close logs the last line if it had no newline.
func (w *LineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
	return nil
}

func (w *LineWriter) emit(line []byte) {
	s := strings.TrimRight(string(line), "\r")
	if len(s) > maxLine {
		s = s[:maxLine]
	}
	if strings.TrimSpace(s) == "" {
		return
	}
	w.log.Log(context.Background(), w.level, w.msg, "line", s)
}
