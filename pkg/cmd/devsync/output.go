package devsync

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kubectl-dev/kubectl-dev/pkg/filesync"
	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// summaryLine is the one line printed per batch, e.g.
// "synced 3 files, 12 KiB, in 18 ms".
func summaryLine(s *filesync.Summary) string {
	var parts []string
	n := s.Files + s.Symlinks
	if n > 0 || s.Bytes > 0 {
		parts = append(parts, fmt.Sprintf("synced %s, %s", plural(n, "file"), formatBytes(s.Bytes)))
	}
	if s.Dirs > 0 {
		parts = append(parts, plural(s.Dirs, "directory"))
	}
	if s.Renamed > 0 {
		parts = append(parts, fmt.Sprintf("%d renamed", s.Renamed))
	}
	if s.Deleted > 0 {
		parts = append(parts, fmt.Sprintf("%d deleted", s.Deleted))
	}
	if s.Attrs > 0 {
		parts = append(parts, fmt.Sprintf("%d attribute updates", s.Attrs))
	}
	if len(s.Errors) > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", len(s.Errors)))
	}
	if len(parts) == 0 {
		return "up to date, checked in " + formatDuration(s.Duration)
	}
	if len(parts) == 1 && len(s.Errors) > 0 {
		parts[0] = "nothing synced, " + parts[0]
	} else if !strings.HasPrefix(parts[0], "synced") {
		parts[0] = "synced " + parts[0]
	}
	return strings.Join(parts, ", ") + ", in " + formatDuration(s.Duration)
}

// summaryDetail writes one line per operation (for -v).
func summaryDetail(w io.Writer, s *filesync.Summary) {
	for _, it := range s.Items {
		line := fmt.Sprintf("  %-7s %s", it.Op, filesync.DisplayPath(it.Path))
		if it.To != "" {
			line += " -> " + filesync.DisplayPath(it.To)
		}
		if it.Op == syncproto.OpWrite && it.Err == "" {
			line += " (" + formatBytes(it.Bytes) + ")"
		}
		if it.Err != "" {
			line += ": " + it.Err
		}
		fmt.Fprintln(w, line)
	}
	// The agent's, in the app's root: caches derived from changed files.
	for _, c := range s.CachesRemoved {
		fmt.Fprintf(w, "  %-7s %s (stale cache)\n", "remove", agentPath(c))
	}
}

// racyNotes are the -v=1 notes on files the agent replaced by a file of
// the same size and mtime second whose caches it does not know.
func racyNotes(w io.Writer, s *filesync.Summary) {
	for _, f := range s.Racy {
		fmt.Fprintf(w, "note: %s was replaced by a file of the same size and mtime second: a cache keyed by both (other than Python's, which the agent removes) may still hold the old content\n", agentPath(f))
	}
	if s.CachesOmitted > 0 {
		fmt.Fprintf(w, "note: the agent left %d stale caches or racy replacements off its report\n", s.CachesOmitted)
	}
}

// agentPath prints a path the agent names (the app chose it: a name in
// its __pycache__) quoted when it holds anything a terminal would not
// print as is.
func agentPath(p string) string {
	if !utf8.ValidString(p) || strings.IndexFunc(p, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 || strings.Contains(p, `"`) {
		return strconv.Quote(p)
	}
	return p
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.HasSuffix(word, "y") {
		return fmt.Sprintf("%d %sies", n, word[:len(word)-1])
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// formatBytes prints a size in binary units: "512 B", "12 KiB", "1.5 MiB".
func formatBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, units := float64(n)/1024, []string{"KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}

// formatDuration prints "18 ms", "1.2 s".
func formatDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
