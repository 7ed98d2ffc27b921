package sshclient

import (
	"os"

	"golang.org/x/term"
)

// Terminal is the local terminal of an interactive session.
type Terminal struct {
	In  *os.File
	Out *os.File
}

// IsTerminal reports whether stdin is a terminal.
func (t Terminal) IsTerminal() bool { return t.In != nil && term.IsTerminal(int(t.In.Fd())) }

// Size returns the terminal's rows and columns (24x80 when unknown).
func (t Terminal) Size() (rows, cols int) {
	for _, f := range []*os.File{t.Out, t.In} {
		if f == nil {
			continue
		}
		if w, h, err := term.GetSize(int(f.Fd())); err == nil && w > 0 && h > 0 {
			return h, w
		}
	}
	return 24, 80
}

// MakeRaw puts stdin in raw mode and returns the function that restores it.
func (t Terminal) MakeRaw() (restore func(), err error) {
	st, err := term.MakeRaw(int(t.In.Fd()))
	if err != nil {
		return func() {}, err
	}
	return func() { _ = term.Restore(int(t.In.Fd()), st) }, nil
}

// Term is the terminal type to ask the agent for.
func Term() string {
	if v := os.Getenv("TERM"); v != "" {
		return v
	}
	return "xterm-256color"
}
