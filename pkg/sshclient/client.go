// Package sshclient is devssh's built-in SSH client: it authenticates with
// the user's key (pkg/keys), pins the agent's host key read from the
// workload's Secret, sends keepalives, and runs shells, commands, local
// forwards and raw ProxyCommand pipes over a connection it is given (the
// port-forward stream of pkg/portforward). It has no cobra dependency.
package sshclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kubectl-dev/kubectl-dev/pkg/coalesce"
	"github.com/kubectl-dev/kubectl-dev/pkg/keepalive"
)

// User is the user name the client logs in as; the agent ignores it (the
// view decides the uid).
const User = "devssh"

// ErrConnectionLost is returned when the connection to the agent ended
// before the remote command reported its exit status.
var ErrConnectionLost = errors.New("the connection to the agent was lost")

// DefaultKeepaliveInterval and KeepaliveCountMax bound how long a dead
// connection (a stalled link, no reset) goes unnoticed: a keepalive is sent
// every interval and waited for one interval, and the connection is closed
// after KeepaliveCountMax unanswered ones, so at most
// (KeepaliveCountMax+1) x interval after the last answer.
const (
	DefaultKeepaliveInterval = 15 * time.Second
	KeepaliveCountMax        = 3
)

// Config is how to authenticate to the agent.
type Config struct {
	// Signer is the user's private key (see LoadSigner).
	Signer ssh.Signer
	// Devpatch is the devpatch command of the workload, with the user's
	// flags, that errors suggest (default: "kubectl devpatch").
	Devpatch string
	// HostKey is the agent's pinned host key; a different key refuses the
	// connection.
	HostKey ssh.PublicKey
	// HostKeySource names where HostKey came from, for messages
	// (e.g. "secret/demo-devagent").
	HostKeySource string
	// HostKeyFunc, when HostKey is nil, gives the pinned key when the
	// handshake checks the server's (after the key exchange), so that the
	// caller can read it while the connection is being set up. Its error
	// fails the handshake.
	HostKeyFunc func() (ssh.PublicKey, error)
	// KeepaliveInterval is how often the client checks the connection
	// (DefaultKeepaliveInterval when zero, negative disables); after
	// KeepaliveCountMax missed replies it closes it.
	KeepaliveInterval time.Duration
	// Timeout bounds the handshake (30s when zero).
	Timeout time.Duration
}

// HostKeyMismatchError is a refused connection to an agent whose host key
// is not the pinned one.
type HostKeyMismatchError struct {
	Got, Want, Source string
	// Devpatch is the command to re-run (default: "kubectl devpatch").
	Devpatch string
}

func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("the agent's host key %s does not match the one in %s (%s): refusing to connect (re-run %s if the Secret was recreated)", e.Got, e.Source, e.Want, orDevpatch(e.Devpatch))
}

func orDevpatch(cmd string) string {
	if cmd == "" {
		return "kubectl devpatch"
	}
	return cmd
}

// LoadSigner reads an unencrypted private key file (the identity devpatch
// created, or --identity).
func LoadSigner(path string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the identity: %w", err)
	}
	s, err := ssh.ParsePrivateKey(data)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, fmt.Errorf("%s is protected by a passphrase: the built-in client cannot use it; use --ssh (OpenSSH and its agent) or an unencrypted key", path)
		}
		return nil, fmt.Errorf("%s is not an SSH private key: %w", path, err)
	}
	return s, nil
}

// ClientConfig is the x/crypto client configuration for c.
func (c Config) ClientConfig() *ssh.ClientConfig {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return &ssh.ClientConfig{
		User: User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(c.Signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			pinned := c.HostKey
			if pinned == nil && c.HostKeyFunc != nil {
				k, err := c.HostKeyFunc()
				if err != nil {
					return err
				}
				pinned = k
			}
			if pinned == nil || !bytes.Equal(key.Marshal(), pinned.Marshal()) {
				want := "none"
				if pinned != nil {
					want = ssh.FingerprintSHA256(pinned)
				}
				return &HostKeyMismatchError{Got: ssh.FingerprintSHA256(key), Want: want, Source: c.HostKeySource, Devpatch: c.Devpatch}
			}
			return nil
		},
		HostKeyAlgorithms: c.hostKeyAlgos(),
		Timeout:           timeout,
		ClientVersion:     "SSH-2.0-kubectl-devssh",
	}
}

// hostKeyAlgos offers the pinned key's algorithm; with the key not known
// yet (HostKeyFunc), the agent's usual ed25519 first, then the others: the
// callback compares the key itself, whatever the algorithm.
func (c Config) hostKeyAlgos() []string {
	if c.HostKey == nil {
		if c.HostKeyFunc != nil {
			return []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512}
		}
		return []string{ssh.KeyAlgoED25519}
	}
	switch t := c.HostKey.Type(); t {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA256}
	default:
		return []string{t}
	}
}

// Client is an SSH connection to the agent.
type Client struct {
	*ssh.Client
	conn     *keepalive.Conn
	lostOnce sync.Once
	lost     chan struct{}
}

// NewClient runs the SSH handshake on conn and starts keepalives.
func NewClient(conn net.Conn, c Config) (*Client, error) {
	cc := c.ClientConfig()
	ac := keepalive.NewConn(coalesce.NewConn(conn))
	conn = ac
	// The port-forward stream has no deadlines: a timer bounds the handshake.
	timer := time.AfterFunc(cc.Timeout, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, "devagent", cc)
	timedOut := !timer.Stop()
	if err != nil && timedOut {
		return nil, fmt.Errorf("SSH handshake with the agent: no answer within %s", cc.Timeout)
	}
	if err != nil {
		var hk *HostKeyMismatchError
		if errors.As(err, &hk) {
			return nil, hk
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("the agent refused the key %s: add it with %s (or choose another with --identity)", ssh.FingerprintSHA256(c.Signer.PublicKey()), orDevpatch(c.Devpatch))
		}
		return nil, fmt.Errorf("SSH handshake with the agent: %w", err)
	}
	cl := &Client{Client: ssh.NewClient(sc, chans, reqs), conn: ac, lost: make(chan struct{})}
	go func() {
		_ = cl.Client.Wait()
		cl.markLost()
	}()
	interval := c.KeepaliveInterval
	if interval == 0 {
		interval = DefaultKeepaliveInterval
	}
	if interval > 0 {
		go cl.keepalive(interval, KeepaliveCountMax)
	}
	return cl, nil
}

func (c *Client) markLost() { c.lostOnce.Do(func() { close(c.lost) }) }

// Lost is closed when the connection has ended.
func (c *Client) Lost() <-chan struct{} { return c.lost }

// keepalive checks the peer (keepalive.Run) and closes the connection
// when it is lost.
func (c *Client) keepalive(interval time.Duration, max int) {
	err := keepalive.Run(c.lost, interval, max, c.conn, func() error {
		_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
		return err
	})
	if err != nil {
		c.Close()
	}
}

// RunOptions is one shell or command.
type RunOptions struct {
	// Command is the remote command line; empty runs a shell.
	Command string
	// Env is sent as "env" requests (NAME=VALUE).
	Env            []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// TTY asks for a pseudo-terminal of type Term and size Rows x Cols;
	// Resize delivers later sizes.
	TTY        bool
	Term       string
	Rows, Cols int
	Resize     <-chan [2]int
}

// Run runs a shell or a command and returns its exit code. The error is
// ErrConnectionLost when the connection ended first.
//
// Round trips: opening the session channel (1), then, for a shell or a
// command with a terminal, "pty-req" and "shell"/"exec" each wait for the
// agent's reply (1 each), then the exit status comes back (1, plus the
// command's own time). The "env" requests are sent without a reply (see
// SendEnv). A command without a terminal does not wait for the "exec"
// reply either (see runCommand): 2 round trips in all.
func (c *Client) Run(ctx context.Context, o RunOptions) (int, error) {
	if !o.TTY && o.Command != "" {
		return c.runCommand(ctx, o)
	}
	sess, err := c.NewSession()
	if err != nil {
		return 255, c.lostOr(fmt.Errorf("opening a session: %w", err))
	}
	defer sess.Close()
	if err := SendEnv(sess, o.Env); err != nil {
		return 255, c.lostOr(err)
	}
	sess.Stdin, sess.Stdout, sess.Stderr = o.Stdin, o.Stdout, o.Stderr
	if o.TTY {
		term := o.Term
		if term == "" {
			term = "xterm-256color"
		}
		rows, cols := o.Rows, o.Cols
		if rows <= 0 || cols <= 0 {
			rows, cols = 24, 80
		}
		modes := ssh.TerminalModes{ssh.ECHO: 1, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400}
		if err := sess.RequestPty(term, rows, cols, modes); err != nil {
			return 255, c.lostOr(fmt.Errorf("requesting a terminal: %w", err))
		}
	}
	if o.Command == "" {
		err = sess.Shell()
	} else {
		err = sess.Start(o.Command)
	}
	if err != nil {
		return 255, c.lostOr(fmt.Errorf("starting the remote command: %w", err))
	}
	stop := make(chan struct{})
	defer close(stop)
	if o.Resize != nil {
		go func() {
			for {
				select {
				case <-stop:
					return
				case sz, ok := <-o.Resize:
					if !ok {
						return
					}
					_ = sess.WindowChange(sz[0], sz[1])
				}
			}
		}()
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- sess.Wait() }()
	select {
	case err = <-waitErr:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGTERM)
		sess.Close()
		return 255, ctx.Err()
	}
	return c.exitCode(err)
}

// runCommand runs o.Command without a terminal on a session channel of
// its own making: x/crypto/ssh's Session.Start sends "exec" with
// want-reply and waits a round trip for the answer, which says only that
// the agent took the request. The agent handles a channel's requests in
// order and reports a command it cannot start on stderr with exit status
// 255, so the exit status says it all. Otherwise it does what Session
// does: stdin is copied to the channel and half-closed at its end (at
// once when nil), stdout and stderr are copied until the agent's EOF, and
// the exit status (or signal) ends it.
func (c *Client) runCommand(ctx context.Context, o RunOptions) (int, error) {
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		return 255, c.lostOr(fmt.Errorf("opening a session: %w", err))
	}
	defer ch.Close()
	for _, kv := range o.Env {
		k, v, _ := strings.Cut(kv, "=")
		if _, err := ch.SendRequest("env", false, ssh.Marshal(envRequest{Name: k, Value: v})); err != nil {
			return 255, c.lostOr(fmt.Errorf("sending env %s: %w", k, err))
		}
	}
	if _, err := ch.SendRequest("exec", false, ssh.Marshal(execRequest{Command: o.Command})); err != nil {
		return 255, c.lostOr(fmt.Errorf("starting the remote command: %w", err))
	}
	// stdin: its reader may block for ever (a terminal); nobody waits for it.
	go func() {
		if o.Stdin != nil {
			_, _ = io.Copy(ch, o.Stdin)
		}
		_ = ch.CloseWrite()
	}()
	var out sync.WaitGroup
	copyOut := func(w io.Writer, r io.Reader) {
		defer out.Done()
		if w == nil {
			w = io.Discard
		}
		_, _ = io.Copy(w, r)
	}
	out.Add(2)
	go copyOut(o.Stdout, ch)
	go copyOut(o.Stderr, ch.Stderr())
	done := make(chan exitResult, 1)
	go func() { done <- waitExit(reqs) }()
	var r exitResult
	select {
	case r = <-done:
	case <-ctx.Done():
		_, _ = ch.SendRequest("signal", false, ssh.Marshal(signalRequest{Signal: string(ssh.SIGTERM)}))
		ch.Close()
		return 255, ctx.Err()
	}
	out.Wait()
	if r.err != nil {
		return 255, c.lostOr(r.err)
	}
	return c.exitCode(r.exit())
}

type execRequest struct{ Command string }

type signalRequest struct{ Signal string }

// exitResult is what the requests of a session channel said before it
// closed.
type exitResult struct {
	status int // -1: no exit-status
	signal string
	err    error
}

// exit is the result as Session.Wait reports it.
func (r exitResult) exit() error {
	switch {
	case r.status == 0:
		return nil
	case r.status == -1 && r.signal == "":
		return &ssh.ExitMissingError{}
	case r.status == -1:
		return exitSignal{r.signal}
	}
	return exitStatus(r.status)
}

type exitSignal struct{ name string }

func (e exitSignal) Error() string { return "remote command killed by signal " + e.name }

type exitStatus int

func (e exitStatus) Error() string {
	return fmt.Sprintf("remote command exited with status %d", int(e))
}

// waitExit reads a session channel's requests until it closes, as
// Session.Wait does.
func waitExit(reqs <-chan *ssh.Request) exitResult {
	r := exitResult{status: -1}
	for req := range reqs {
		switch req.Type {
		case "exit-status":
			var m struct{ Status uint32 }
			if err := ssh.Unmarshal(req.Payload, &m); err != nil {
				r.err = fmt.Errorf("a malformed exit-status: %w", err)
				continue
			}
			r.status = int(m.Status)
		case "exit-signal":
			var m struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}
			if err := ssh.Unmarshal(req.Payload, &m); err != nil {
				r.err = fmt.Errorf("a malformed exit-signal: %w", err)
				continue
			}
			r.signal = m.Signal
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
	return r
}

// SendEnv sends each NAME=VALUE of env as an "env" request without
// asking for a reply (Session.Setenv waits for one: a round trip each).
// The requests of a channel are handled in order, so they are in place
// before the shell, exec or subsystem request that follows; a refused one
// is not reported (the agent refuses only malformed names).
func SendEnv(sess *ssh.Session, env []string) error {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, err := sess.SendRequest("env", false, ssh.Marshal(envRequest{Name: k, Value: v})); err != nil {
			return fmt.Errorf("sending env %s: %w", k, err)
		}
	}
	return nil
}

// envRequest is RFC 4254 6.4's "env" payload.
type envRequest struct {
	Name  string
	Value string
}

func (c *Client) exitCode(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var es exitStatus
	if errors.As(err, &es) {
		return int(es), nil
	}
	var sig exitSignal
	if errors.As(err, &sig) {
		return 128 + signalNumber(sig.name), nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		if ee.Signal() != "" && ee.ExitStatus() == 0 {
			return 128 + signalNumber(ee.Signal()), nil
		}
		return ee.ExitStatus(), nil
	}
	var em *ssh.ExitMissingError
	if errors.As(err, &em) || errors.Is(err, io.EOF) {
		return 255, ErrConnectionLost
	}
	return 255, c.lostOr(err)
}

// lostOr is ErrConnectionLost when the connection is gone, else err.
func (c *Client) lostOr(err error) error {
	select {
	case <-c.lost:
		return ErrConnectionLost
	default:
		return err
	}
}

func signalNumber(name string) int {
	n := map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15}
	if v, ok := n[name]; ok {
		return v
	}
	return 0
}

// QuoteCommand joins argv into one command line for the remote "sh -c",
// quoting each argument so that the remote side sees argv unchanged (as
// kubectl exec does; plain ssh would join the words with spaces).
func QuoteCommand(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(shellQuote(a))
	}
	return b.String()
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Pipe copies raw bytes between the local side (ProxyCommand's stdin and
// stdout) and conn until either side ends.
func Pipe(conn net.Conn, in io.Reader, out io.Writer) error {
	errc := make(chan error, 2)
	go func() {
		_, err := io.Copy(out, conn)
		errc <- err
	}()
	go func() {
		_, err := io.Copy(conn, in)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		if err != nil {
			errc <- err
		}
	}()
	return <-errc
}
