package filesync

import "sync"

// batchProgress feeds a batch's Progress. Without the agent's reports
// (acks false: an agent without FeatureProgress) it reports content as it
// is handed to the channel, as before. With them, content counts once the
// agent reports it received (syncproto.Received, fed by the read loop):
// what the SSH channels accept (2 MiB per channel, up to 9 channels) may
// take many seconds to cross a slow link. A file is done once the agent
// has received as much content as was sent up to its end. Its methods are
// no-ops on a nil batchProgress (no Progress).
type batchProgress struct {
	p    Progress
	id   uint64 // the batch's
	acks bool

	mu       sync.Mutex
	handed   int64      // content handed to the channels
	reported int64      // content reported through p.Add
	files    []sentFile // files sent, not yet reported done
	ended    bool       // Apply returned: the read loop reports no more
}

type sentFile struct {
	end  int64 // handed when the file's last byte was
	path string
}

// sent counts n bytes of content handed to a channel.
func (b *batchProgress) sent(n int64) {
	if b == nil {
		return
	}
	if !b.acks {
		b.p.Add(n)
		return
	}
	b.mu.Lock()
	b.handed += n
	b.mu.Unlock()
}

// fileSent says that the content of path was all handed over.
func (b *batchProgress) fileSent(path string) {
	if b == nil {
		return
	}
	if !b.acks {
		b.p.FileDone(path)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	b.files = append(b.files, sentFile{end: b.handed, path: path})
	b.doneUpTo(b.reported)
}

// received takes the agent's count of the batch's content it has.
func (b *batchProgress) received(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended || n <= b.reported {
		return
	}
	b.p.Add(n - b.reported)
	b.reported = n
	b.doneUpTo(n)
}

// doneUpTo reports the files whose content ends at or before n; b.mu is
// held.
func (b *batchProgress) doneUpTo(n int64) {
	i := 0
	for ; i < len(b.files) && b.files[i].end <= n; i++ {
		b.p.FileDone(b.files[i].path)
	}
	b.files = b.files[i:]
}

// finish ends the reports; when the batch got its result (ok) the agent
// has everything: the rest of the content and files are reported.
func (b *batchProgress) finish(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	b.ended = true
	if !ok {
		return
	}
	if b.handed > b.reported {
		b.p.Add(b.handed - b.reported)
		b.reported = b.handed
	}
	b.doneUpTo(b.reported)
	for _, f := range b.files {
		b.p.FileDone(f.path)
	}
	b.files = nil
}
