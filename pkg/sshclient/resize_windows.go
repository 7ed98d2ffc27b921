//go:build windows

package sshclient

import "time"

// WatchSize polls the console's size (Windows has no SIGWINCH) and sends
// (rows, cols) when it changes, until stop is closed.
func (t Terminal) WatchSize(stop <-chan struct{}) <-chan [2]int {
	out := make(chan [2]int, 1)
	go func() {
		defer close(out)
		r0, c0 := t.Size()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if r, c := t.Size(); r != r0 || c != c0 {
					r0, c0 = r, c
					select {
					case out <- [2]int{r, c}:
					default:
					}
				}
			}
		}
	}()
	return out
}
