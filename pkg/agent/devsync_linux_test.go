//go:build linux

package agent

import "testing"

func TestParseSupervisorCmdline(t *testing.T) {
	for _, tc := range []struct {
		argv       []string
		supervised bool
		socket     string
	}{
		{[]string{"/.devagent/devagent", "supervise", "--socket", "/.devagent/ctl.sock", "--", "python3", "-m", "x"}, true, "/.devagent/ctl.sock"},
		{[]string{"/.devagent/devagent", "supervise", "--socket=/s.sock", "--", "app"}, true, "/s.sock"},
		{[]string{"/.devagent/devagent", "supervise", "--", "app", "--socket", "/no"}, true, ""},
		{[]string{"python3", "-m", "x"}, false, ""},
		{[]string{"/devagent", "--target-container=app"}, false, ""},
	} {
		sup, sock := parseSupervisorCmdline(tc.argv)
		if sup != tc.supervised || sock != tc.socket {
			t.Errorf("%q: got %v %q, want %v %q", tc.argv, sup, sock, tc.supervised, tc.socket)
		}
	}
}
