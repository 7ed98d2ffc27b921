//go:build !windows

package sshclient

import (
	"os"
	"os/signal"
	"syscall"
)

// WatchSize sends the terminal's size (rows, cols) on every SIGWINCH until
// stop is closed.
func (t Terminal) WatchSize(stop <-chan struct{}) <-chan [2]int {
	out := make(chan [2]int, 1)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGWINCH)
	go func() {
		defer signal.Stop(sig)
		defer close(out)
		for {
			select {
			case <-stop:
				return
			case <-sig:
				r, c := t.Size()
				select {
				case out <- [2]int{r, c}:
				default:
				}
			}
		}
	}()
	return out
}
