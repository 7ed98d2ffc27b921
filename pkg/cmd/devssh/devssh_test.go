package devssh

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	uexec "k8s.io/utils/exec"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(o *Options)
		want string
	}{
		{"defaults", func(o *Options) {}, ""},
		{"bad target", func(o *Options) { o.Target = "both" }, "--target must be app or agent"},
		{"stdio with command", func(o *Options) { o.Stdio, o.Command = true, []string{"ls"} }, "--stdio"},
		{"ssh-option without ssh", func(o *Options) { o.SSHOptions = []string{"A=b"} }, "--ssh-option only works with --ssh"},
		{"-N with command", func(o *Options) { o.NoCommand, o.Command = true, []string{"ls"} }, "-N runs no command"},
		{"bad -L", func(o *Options) { o.Forwards = []string{"nope"} }, "-L"},
		{"good -L", func(o *Options) { o.Forwards = []string{"8080:localhost:8080"} }, ""},
		{"timeout", func(o *Options) { o.PodRunningTimeout = 0 }, "--pod-running-timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := NewOptions(genericiooptions.NewTestIOStreamsDiscard())
			o.Target = "app"
			c.mod(o)
			err := o.Validate()
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Validate = %v, want %q", err, c.want)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	var ce uexec.CodeExitError
	// The remote command's code passes through without a message.
	if err := exitError(7, ""); !errors.As(err, &ce) || ce.Code != 7 || ce.Error() != "" {
		t.Fatalf("exitError(7) = %#v", err)
	}
	// Connection failures are 255 with one line.
	if err := connectionFailed(errors.New("no route")); !errors.As(err, &ce) || ce.Code != 255 || ce.Error() != "error: no route" {
		t.Fatalf("connectionFailed = %#v", err)
	}
	// An exit error is not wrapped again.
	if err := connectionFailed(exitError(3, "")); !errors.As(err, &ce) || ce.Code != 3 {
		t.Fatalf("connectionFailed(exit 3) = %#v", err)
	}
}
