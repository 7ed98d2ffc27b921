//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubectl-dev/kubectl-dev/hack/internal/cluster"
	"github.com/kubectl-dev/kubectl-dev/hack/link"
	"github.com/kubectl-dev/kubectl-dev/hack/testbed"
)

func init() {
	register("link up", linkUp)
	register("link down", linkDown)
	register("link status", linkStatus)
	register("link serve", linkServe)
}

// The link's addresses (loopback only) and files.
func linkAddr() string    { return testbed.Getenv("KDEV_LINK_ADDR", "127.0.0.1:16443") }
func linkAPIAddr() string { return testbed.Getenv("KDEV_LINK_API_ADDR", "127.0.0.1:18474") }
func linkPidFile() string { return filepath.Join(testbed.PidDir(), "link.pid") }
func linkLogFile() string { return filepath.Join(testbed.LogDir(), "link.log") }

// LinkKubeconfig is the kubeconfig `kdev link up` writes.
func linkKubeconfig() string { return filepath.Join(testbed.StateDir(), "link.kubeconfig") }

func linkUsage() string {
	var b strings.Builder
	for _, p := range link.Profiles() {
		fmt.Fprintf(&b, "  %-4s %s\n", p.Name, p.Summary)
	}
	return b.String()
}

// linkUp: kdev link up [--kubeconfig FILE] PROFILE
//
// Starts the link emulator (a Toxiproxy proxy with the profile's toxics) in
// the background in front of the API server of the kubeconfig (the local
// cluster's by default), writes a kubeconfig through it and prints the
// export that uses it. A link already up is replaced.
func linkUp(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kdev link up", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", testbed.Kubeconfig(), "the kubeconfig of the cluster to put the link in front of")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: kdev link up [--kubeconfig FILE] PROFILE\n\nprofiles (each direction):\n%s", linkUsage())
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("link up takes one profile")
	}
	p, err := link.Lookup(fs.Arg(0))
	if err != nil {
		return err
	}
	upstream, err := link.Upstream(*kubeconfig)
	if err != nil {
		return err
	}
	if err := cluster.StopDaemon(linkPidFile()); err != nil {
		return fmt.Errorf("stopping the link that was up: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if _, err := cluster.StartDaemon([]string{self, "link", "serve", "--upstream", upstream, p.Name}, linkLogFile(), linkPidFile()); err != nil {
		return fmt.Errorf("starting the link: %w", err)
	}
	if err := waitListening(ctx, linkAddr(), 10*time.Second); err != nil {
		_ = cluster.StopDaemon(linkPidFile())
		return fmt.Errorf("the link did not come up (see %s): %w", linkLogFile(), err)
	}
	if err := link.WriteKubeconfig(*kubeconfig, linkKubeconfig(), linkAddr()); err != nil {
		_ = cluster.StopDaemon(linkPidFile())
		return err
	}
	fmt.Fprintf(os.Stderr, "link %s (%s) up on %s in front of %s; Toxiproxy API on http://%s\n",
		p.Name, p.Summary, linkAddr(), upstream, linkAPIAddr())
	fmt.Printf("export KUBECONFIG=%s\n", linkKubeconfig())
	return nil
}

func waitListening(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// linkDown: kdev link down. Stops the link and removes its kubeconfig.
func linkDown(_ context.Context, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("link down takes no arguments")
	}
	if err := cluster.StopDaemon(linkPidFile()); err != nil {
		return err
	}
	if err := os.Remove(linkKubeconfig()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fmt.Fprintln(os.Stderr, "link down")
	return nil
}

// linkStatus: kdev link status. Says whether the link is up and with which
// profile and toxics (from Toxiproxy's API).
func linkStatus(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("link status takes no arguments")
	}
	info, ok := cluster.DaemonRunning(linkPidFile())
	if !ok {
		fmt.Println("link: down")
		return nil
	}
	fmt.Printf("link: up (pid %d: %s)\nkubeconfig: %s\n", info.Pid, strings.Join(info.Args[1:], " "), linkKubeconfig())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+linkAPIAddr()+"/proxies/api/toxics", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("asking the link's Toxiproxy API for its toxics: %w", err)
	}
	defer resp.Body.Close()
	fmt.Print("toxics: ")
	_, err = os.Stdout.ReadFrom(resp.Body)
	fmt.Println()
	return err
}

// linkServe: kdev link serve --upstream HOST:PORT PROFILE
//
// Runs the link in the foreground until interrupted: the proxy on
// KDEV_LINK_ADDR and Toxiproxy's HTTP API on KDEV_LINK_API_ADDR.
func linkServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("kdev link serve", flag.ContinueOnError)
	upstream := fs.String("upstream", "127.0.0.1:6443", "the API server's host:port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("link serve takes one profile")
	}
	p, err := link.Lookup(fs.Arg(0))
	if err != nil {
		return err
	}
	l, err := link.Start(p, linkAddr(), *upstream)
	if err != nil {
		return err
	}
	defer l.Close()
	host, port, err := net.SplitHostPort(linkAPIAddr())
	if err != nil {
		return fmt.Errorf("KDEV_LINK_API_ADDR: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("KDEV_LINK_API_ADDR %q is not a loopback address: Toxiproxy's API has no authentication", linkAPIAddr())
	}
	fmt.Fprintf(os.Stderr, "link %s: %s -> %s, toxics %s\n", p.Name, l.Addr(), *upstream, strings.Join(l.Toxics(), ", "))
	go l.Server().Listen(host, port) // Toxiproxy's API server runs until the process ends
	<-ctx.Done()
	return nil
}
