package sshclient

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestParseForward(t *testing.T) {
	cases := map[string]Forward{
		"8080:localhost:80":           {BindAddr: "localhost", BindPort: 8080, Host: "localhost", HostPort: 80},
		"0.0.0.0:9000:127.0.0.1:9000": {BindAddr: "0.0.0.0", BindPort: 9000, Host: "127.0.0.1", HostPort: 9000},
		"[::1]:0:[::1]:22":            {BindAddr: "::1", BindPort: 0, Host: "::1", HostPort: 22},
		"*:80:localhost:8080":         {BindAddr: "", BindPort: 80, Host: "localhost", HostPort: 8080},
	}
	for in, want := range cases {
		got, err := ParseForward(in)
		if err != nil || got != want {
			t.Errorf("ParseForward(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"8080", "a:localhost:80", "80:localhost:0", "1:2:3:4:5", "80::80", "[::1:80:h:1"} {
		if _, err := ParseForward(bad); err == nil {
			t.Errorf("ParseForward(%q) succeeded", bad)
		}
	}
}

func TestQuoteCommandKeepsArgv(t *testing.T) {
	argv := []string{"printf", "%s|", "a b", "it's", "$HOME", "", `"q"`, "x;y", "*"}
	out, err := exec.Command("sh", "-c", QuoteCommand(argv)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := `a b|it's|$HOME||"q"|x;y|*|`; string(out) != want {
		t.Fatalf("sh -c %s printed %q, want %q", QuoteCommand(argv), out, want)
	}
	if got := QuoteCommand([]string{"ls", "-l", "/app"}); got != "ls -l /app" {
		t.Fatalf("plain words quoted: %q", got)
	}
}

func TestOpenSSHBlock(t *testing.T) {
	if a := Alias("deployment", "demo", "dev"); a != "demo.dev.kdev" {
		t.Fatalf("Alias = %q", a)
	}
	if a := Alias("sts", "db", "dev"); a != "sts-db.dev.kdev" {
		t.Fatalf("Alias = %q", a)
	}
	o := OpenSSH{Alias: "demo.dev.kdev", ProxyCommand: []string{"/usr/bin/kubectl-devssh", "--stdio", "--context", "my ctx", "--namespace", "dev", "deploy/demo"},
		IdentityFile: "/home/u/.kube/kubectl-dev/id_ed25519", KnownHostsFile: "/home/u/.ssh/kubectl-dev/demo.dev.kdev.known_hosts"}
	b := o.Block()
	for _, want := range []string{"Host demo.dev.kdev\n", "ProxyCommand /usr/bin/kubectl-devssh --stdio --context 'my ctx' --namespace dev deploy/demo\n",
		"StrictHostKeyChecking yes", "HostKeyAlias demo.dev.kdev", "IdentitiesOnly yes", "UserKnownHostsFile /home/u/.ssh/kubectl-dev/demo.dev.kdev.known_hosts"} {
		if !strings.Contains(b, want) {
			t.Errorf("block lacks %q:\n%s", want, b)
		}
	}
}

func TestExitResult(t *testing.T) {
	c := &Client{lost: make(chan struct{})}
	cases := []struct {
		r    exitResult
		code int
		err  error
	}{
		{exitResult{status: 0}, 0, nil},
		{exitResult{status: 3}, 3, nil},
		{exitResult{status: -1, signal: "KILL"}, 137, nil},
		{exitResult{status: 0, signal: "TERM"}, 0, nil},
		{exitResult{status: -1}, 255, ErrConnectionLost},
	}
	for _, tc := range cases {
		code, err := c.exitCode(tc.r.exit())
		if code != tc.code || !errors.Is(err, tc.err) {
			t.Errorf("%+v: exitCode = %d, %v; want %d, %v", tc.r, code, err, tc.code, tc.err)
		}
	}
}
