package filesync

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// IgnoreOptions select the ignore rules of a local tree.
type IgnoreOptions struct {
	// Excludes are extra patterns in .gitignore syntax, relative to the
	// tree's root (--exclude).
	Excludes []string
	// NoGitignore disables .gitignore files; NoDockerignore disables the
	// root's .dockerignore.
	NoGitignore, NoDockerignore bool
}

// Ignorer decides which paths of a local tree are not synced: ".git"
// always, the rules of nested .gitignore files (git semantics: a pattern
// without a slash matches at any depth below its file, "!" re-includes, a
// trailing "/" matches directories only, "**" spans directories, and nothing
// below an ignored directory can be re-included), the root's .dockerignore
// (patterns anchored at the root, as Docker reads them) and --exclude
// patterns. A path is ignored when any of the three sources ignores it.
// Safe for concurrent use.
type Ignorer struct {
	root     string
	opts     IgnoreOptions
	mu       sync.Mutex
	git      map[string]*ruleSet // directory ("" for the root) -> its .gitignore
	docker   *ruleSet
	excludes *ruleSet
}

// NewIgnorer reads the ignore rules of the tree at root. Nested .gitignore
// files are read when a path below them is first matched.
func NewIgnorer(root string, opts IgnoreOptions) (*Ignorer, error) {
	ig := &Ignorer{root: root, opts: opts, git: map[string]*ruleSet{}}
	var err error
	if ig.excludes, err = parseRules("", strings.Join(opts.Excludes, "\n"), false); err != nil {
		return nil, fmt.Errorf("--exclude: %w", err)
	}
	if !opts.NoDockerignore {
		b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("read .dockerignore: %w", err)
		}
		if ig.docker, err = parseRules("", string(b), true); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(root, ".dockerignore"), err)
		}
	}
	return ig, nil
}

// Reload forgets the rules read from dir's .gitignore (dir relative to the
// root, "" for the root) and the .dockerignore when dir is the root, so that
// an edited ignore file applies to the next matches.
func (ig *Ignorer) Reload(dir string) error {
	ig.mu.Lock()
	delete(ig.git, dir)
	ig.mu.Unlock()
	if dir == "" && !ig.opts.NoDockerignore {
		b, err := os.ReadFile(filepath.Join(ig.root, ".dockerignore"))
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		rs, err := parseRules("", string(b), true)
		if err != nil {
			return err
		}
		ig.mu.Lock()
		ig.docker = rs
		ig.mu.Unlock()
	}
	return nil
}

// IsIgnoreFile reports whether rel is an ignore file whose change should be
// followed by Reload(path.Dir(rel)).
func IsIgnoreFile(rel string) bool {
	b := path.Base(rel)
	return b == ".gitignore" || (b == ".dockerignore" && !strings.Contains(rel, "/"))
}

// Match reports whether rel (slash-separated, relative to the root) is
// ignored; isDir tells whether rel is a directory.
func (ig *Ignorer) Match(rel string, isDir bool) bool {
	if ig == nil {
		return false
	}
	rel = strings.Trim(rel, "/")
	if rel == "" || rel == "." {
		return false
	}
	// Every ancestor directory first: a child of an ignored directory
	// cannot be re-included.
	for i := 0; i <= len(rel); i++ {
		if i == len(rel) || rel[i] == '/' {
			p := rel[:i]
			if ig.matchOne(p, i < len(rel) || isDir) {
				return true
			}
		}
	}
	return false
}

func (ig *Ignorer) matchOne(p string, isDir bool) bool {
	if path.Base(p) == ".git" {
		return true
	}
	if ig.excludes.decide(p, isDir) == ruleIgnore {
		return true
	}
	ig.mu.Lock()
	docker := ig.docker
	ig.mu.Unlock()
	if docker.decide(p, isDir) == ruleIgnore {
		return true
	}
	if ig.opts.NoGitignore {
		return false
	}
	// .gitignore files of the root and of every ancestor directory of p,
	// shallowest first: a deeper file's match overrides.
	decision := ruleNone
	for i := -1; i < len(p); i++ {
		if i >= 0 && p[i] != '/' {
			continue
		}
		dir := ""
		if i > 0 {
			dir = p[:i]
		}
		if d := ig.gitRules(dir).decide(p, isDir); d != ruleNone {
			decision = d
		}
	}
	return decision == ruleIgnore
}

// gitRules returns the rules of dir's .gitignore (nil when none).
func (ig *Ignorer) gitRules(dir string) *ruleSet {
	ig.mu.Lock()
	rs, ok := ig.git[dir]
	ig.mu.Unlock()
	if ok {
		return rs
	}
	b, err := os.ReadFile(filepath.Join(ig.root, filepath.FromSlash(dir), ".gitignore"))
	if err == nil {
		rs, _ = parseRules(dir, string(b), false) // invalid lines are skipped, as git does
	}
	ig.mu.Lock()
	ig.git[dir] = rs
	ig.mu.Unlock()
	return rs
}

type ruleDecision int

const (
	ruleNone ruleDecision = iota
	ruleIgnore
	ruleInclude
)

type rule struct {
	re      *regexp.Regexp
	negate  bool
	dirOnly bool
}

// ruleSet holds the patterns of one file, relative to base.
type ruleSet struct {
	base  string
	rules []rule
}

func (rs *ruleSet) decide(p string, isDir bool) ruleDecision {
	if rs == nil || len(rs.rules) == 0 {
		return ruleNone
	}
	if rs.base != "" {
		if !strings.HasPrefix(p, rs.base+"/") {
			return ruleNone
		}
		p = p[len(rs.base)+1:]
	}
	d := ruleNone
	for _, r := range rs.rules {
		if r.dirOnly && !isDir {
			continue
		}
		if r.re.MatchString(p) {
			if r.negate {
				d = ruleInclude
			} else {
				d = ruleIgnore
			}
		}
	}
	return d
}

// parseRules compiles patterns in .gitignore syntax. anchorAll anchors every
// pattern at base (the .dockerignore reading).
func parseRules(base, text string, anchorAll bool) (*ruleSet, error) {
	rs := &ruleSet{base: base}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		r, ok, err := compileRule(line, anchorAll)
		if err != nil {
			return rs, fmt.Errorf("pattern %q: %w", line, err)
		}
		if ok {
			rs.rules = append(rs.rules, r)
		}
	}
	return rs, sc.Err()
}

func compileRule(line string, anchorAll bool) (rule, bool, error) {
	// Trailing spaces are dropped unless escaped.
	for strings.HasSuffix(line, " ") && !strings.HasSuffix(line, "\\ ") {
		line = line[:len(line)-1]
	}
	if line == "" || line[0] == '#' {
		return rule{}, false, nil
	}
	var r rule
	if line[0] == '!' {
		r.negate = true
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") && !strings.HasSuffix(line, "\\/") {
		r.dirOnly = true
		line = strings.TrimRight(line, "/")
	}
	if line == "" {
		return rule{}, false, nil
	}
	anchored := anchorAll || strings.Contains(line, "/")
	line = strings.TrimLeft(line, "/")
	if anchorAll {
		line = path.Clean(line) // Docker cleans its patterns
	}
	var re bytes.Buffer
	re.WriteString("^")
	if !anchored {
		re.WriteString("(?:.*/)?")
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '*' && strings.HasPrefix(line[i:], "**"):
			atStart := i == 0 || line[i-1] == '/'
			j := i + 2
			switch {
			case atStart && j < len(line) && line[j] == '/':
				re.WriteString("(?:.*/)?") // "**/" : any leading directories
				i = j
			case atStart && j == len(line):
				re.WriteString(".*") // trailing "/**" or a lone "**"
				i = j - 1
			default:
				re.WriteString("[^/]*") // "a**b": like "*"
				i = j - 1
			}
		case c == '*':
			re.WriteString("[^/]*")
		case c == '?':
			re.WriteString("[^/]")
		case c == '[':
			end := strings.IndexByte(line[i+1:], ']')
			if end < 0 {
				re.WriteString(`\[`)
				continue
			}
			class := line[i+1 : i+1+end]
			if end == 0 { // "[]...]": a literal ] first
				end2 := strings.IndexByte(line[i+2:], ']')
				if end2 < 0 {
					re.WriteString(`\[`)
					continue
				}
				class = line[i+1 : i+2+end2]
				end = end2 + 1
			}
			if strings.HasPrefix(class, "!") || strings.HasPrefix(class, "^") {
				class = "^" + class[1:]
			}
			class = strings.ReplaceAll(class, `\`, `\\`)
			re.WriteString("[" + class + "]")
			i += end + 1
		case c == '\\' && i+1 < len(line):
			i++
			re.WriteString(regexp.QuoteMeta(string(line[i])))
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	// A pattern matching a directory also covers what is below it (checked
	// by Match through the ancestors), so an exact match is enough here.
	re.WriteString("$")
	compiled, err := regexp.Compile(re.String())
	if err != nil {
		return rule{}, false, err
	}
	r.re = compiled
	return r, true, nil
}
