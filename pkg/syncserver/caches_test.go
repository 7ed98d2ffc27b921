package syncserver

import (
	"slices"
	"testing"
	"time"
)

func TestDerivedCaches(t *testing.T) {
	tests := []struct {
		src, prefix string
		ok          bool
		dirs, files []string
	}{
		{"/app/e2e_k8s/demo.py", "", true, []string{"/app/e2e_k8s/__pycache__"}, []string{"/app/e2e_k8s/demo.pyc", "/app/e2e_k8s/demo.pyo"}},
		{"/app/e2e_k8s/demo.py", "/tmp/pyc", true, []string{"/app/e2e_k8s/__pycache__", "/tmp/pyc/app/e2e_k8s"}, []string{"/app/e2e_k8s/demo.pyc", "/app/e2e_k8s/demo.pyo"}},
		{"/app/__init__.py", "", true, []string{"/app/__pycache__"}, []string{"/app/__init__.pyc", "/app/__init__.pyo"}},
		{"gui.pyw", "", true, []string{"__pycache__"}, []string{"gui.pyc", "gui.pyo"}},
		{"/m.py", "/c", true, []string{"/__pycache__", "/c"}, []string{"/m.pyc", "/m.pyo"}},
		{"/app/.py", "", false, nil, nil},
		{"/app/m.pyc", "", false, nil, nil},
		{"/app/m.pyi", "", false, nil, nil},
		{"/app/main.go", "/tmp/pyc", false, nil, nil},
		{"/app/py", "", false, nil, nil},
	}
	for _, tt := range tests {
		c, ok := derivedCaches(tt.src, tt.prefix)
		if ok != tt.ok || !slices.Equal(c.Dirs, tt.dirs) || !slices.Equal(c.Files, tt.files) {
			t.Errorf("derivedCaches(%q, %q) = %+v, %v; want dirs %q, files %q, %v", tt.src, tt.prefix, c, ok, tt.dirs, tt.files, tt.ok)
		}
	}
}

func TestPycachePrefix(t *testing.T) {
	tests := []struct {
		env  []string
		cwd  string
		want string
	}{
		{nil, "/app", ""},
		{[]string{"PATH=/bin", "PYTHONPYCACHEPREFIX=/tmp/pyc/"}, "/app", "/tmp/pyc"},
		{[]string{"PYTHONPYCACHEPREFIX=.cache"}, "/app", "/app/.cache"},
		{[]string{"PYTHONPYCACHEPREFIX=.cache"}, "", "/.cache"},
		{[]string{"PYTHONPYCACHEPREFIX=/a", "PYTHONPYCACHEPREFIX=/b"}, "/", "/b"},
		{[]string{"PYTHONPYCACHEPREFIX="}, "/app", ""},
		{[]string{"XPYTHONPYCACHEPREFIX=/x"}, "/app", ""},
	}
	for _, tt := range tests {
		if got := PycachePrefix(tt.env, tt.cwd); got != tt.want {
			t.Errorf("PycachePrefix(%q, %q) = %q, want %q", tt.env, tt.cwd, got, tt.want)
		}
	}
}

func TestCacheSpecMatches(t *testing.T) {
	c, _ := derivedCaches("/app/demo.py", "")
	for name, want := range map[string]bool{
		"demo.cpython-311.pyc":         true,
		"demo.cpython-311.opt-1.pyc":   true,
		"demo.cpython-311.opt-2.pyc":   true,
		"demo.pypy39.pyc":              true,
		"demo.cpython-34.pyo":          true,
		"demo.x.cpython-311.pyc":       false, // demo.x.py's
		"demo.cpython-311.opt-1.x.pyc": false,
		"demo.cpython-311.x.pyc":       false,
		"demo..pyc":                    false,
		"demo.pyc":                     false, // no tag: not what the import system writes there
		"demox.cpython-311.pyc":        false,
		"other.cpython-311.pyc":        false,
		"demo.cpython-311.pyc.1234":    false, // importlib's temporary file
		"demo.cpython-311.py":          false,
	} {
		if got := c.Matches(name); got != want {
			t.Errorf("Matches(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestRacy(t *testing.T) {
	sec := time.Unix(1700000000, 0)
	tests := []struct {
		desc          string
		size, size2   int64
		mtime, mtime2 time.Time
		want          bool
	}{
		{"same size, same second", 5, 5, sec.Add(100 * time.Millisecond), sec.Add(400 * time.Millisecond), true},
		{"same stamp", 5, 5, sec, sec, true},
		{"same size, next second", 5, 5, sec.Add(900 * time.Millisecond), sec.Add(1100 * time.Millisecond), false},
		{"other size, same second", 5, 6, sec, sec.Add(time.Millisecond), false},
		{"same size, older mtime of the same second", 5, 5, sec.Add(400 * time.Millisecond), sec.Add(100 * time.Millisecond), true},
	}
	for _, tt := range tests {
		if got := racy(tt.size, tt.mtime, tt.size2, tt.mtime2); got != tt.want {
			t.Errorf("%s: racy = %v, want %v", tt.desc, got, tt.want)
		}
	}
}
