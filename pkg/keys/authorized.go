package keys

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// AuthorizedKey is one usable line of an authorized_keys file.
type AuthorizedKey struct {
	Key     ssh.PublicKey
	Comment string
	Options []string
	// Line is the line as written (trimmed).
	Line string
}

// ParseAuthorizedKeys parses an authorized_keys file. Blank lines and
// comments are skipped; a line that is not a public key is an error naming
// its number. An empty file is no error (see RequireAuthorizedKeys).
func ParseAuthorizedKeys(data []byte) ([]AuthorizedKey, error) {
	var out []AuthorizedKey
	for i, raw := range bytes.Split(data, []byte("\n")) {
		line := strings.TrimSpace(string(raw))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pk, comment, options, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return out, fmt.Errorf("line %d is not an SSH public key: %w", i+1, err)
		}
		out = append(out, AuthorizedKey{Key: pk, Comment: comment, Options: options, Line: line})
	}
	return out, nil
}

// RequireAuthorizedKeys parses an authorized_keys file that must hold at
// least one key, as the agent does at start.
func RequireAuthorizedKeys(data []byte) ([]AuthorizedKey, error) {
	ks, err := ParseAuthorizedKeys(data)
	if err != nil {
		return nil, err
	}
	if len(ks) == 0 {
		return nil, errors.New("it holds no public key")
	}
	return ks, nil
}

// MergeAuthorizedKeys adds the keys in add (authorized_keys lines) to
// existing, keeping every existing line in its order and skipping keys that
// are already there (compared by key, not by comment). It returns the new
// file and whether anything was added. Lines of existing that do not parse
// are kept as they are: they are someone else's business.
func MergeAuthorizedKeys(existing []byte, add ...string) ([]byte, bool, error) {
	have := map[string]bool{}
	var lines []string
	for _, raw := range strings.Split(string(existing), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" {
			continue
		}
		lines = append(lines, line)
		if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
			have[string(pk.Marshal())] = true
		}
	}
	changed := false
	for _, a := range add {
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(a))
		if err != nil {
			return nil, false, fmt.Errorf("not an SSH public key: %q: %w", a, err)
		}
		if have[string(pk.Marshal())] {
			continue
		}
		have[string(pk.Marshal())] = true
		lines = append(lines, strings.TrimSpace(a))
		changed = true
	}
	if len(lines) == 0 {
		return nil, changed, nil
	}
	return []byte(strings.Join(lines, "\n") + "\n"), changed, nil
}
