//go:build linux

package syncserver

import (
	"sync"
	"time"

	"github.com/kubectl-dev/kubectl-dev/pkg/syncproto"
)

// ProgressInterval is how often, at most, the agent reports the content a
// batch has received (FeatureProgress): the client's progress bar redraws
// as often.
const ProgressInterval = 100 * time.Millisecond

// progressStopWait bounds how long a batch that failed waits for its
// progress reporter, which may be stuck writing to a client that does not
// read; fatal then waits for the same lock, as long again.
const progressStopWait = 2 * time.Second

// reportProgress starts the progress reporter of batch id, when the client
// takes Received messages: every ProgressInterval it sends how much file
// content of the batch the session has received (inline: readContent;
// lanes: serveLane, once the write took the chunk), when that grew. The
// content is counted when the agent has it, so the client's progress
// follows the link, not the SSH windows ahead of it.
//
// The returned stop ends the reporter; with wait it returns once the
// reporter is done (the batch then writes its Result: every Received
// precedes it), else it waits at most progressStopWait. It may be called
// more than once.
func (s *session) reportProgress(id uint64) (stop func(wait bool)) {
	if !s.progress {
		return func(bool) {}
	}
	base := s.received.Load()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(ProgressInterval)
		defer tick.Stop()
		var last int64
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			n := s.received.Load() - base
			if n == last {
				continue
			}
			last = n
			s.wmu.Lock()
			err := s.fw.Write(&syncproto.Received{ID: id, Bytes: n})
			if err == nil {
				err = s.fw.Flush()
			}
			s.wmu.Unlock()
			if err != nil {
				return // the session's channel failed: the batch will see it
			}
		}
	}()
	var once sync.Once
	return func(wait bool) {
		once.Do(func() { close(quit) })
		if wait {
			<-done
			return
		}
		t := time.NewTimer(progressStopWait)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
	}
}
