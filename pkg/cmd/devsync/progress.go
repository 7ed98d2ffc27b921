package devsync

import (
	"fmt"
	"io"
	"sync"
	"time"

	pb "github.com/cheggaaa/pb/v3"
)

// progressTemplate shows bytes, files, rate and time left:
// "12.00 MiB / 50.00 MiB [====>   ] 3/10 files 24.00% 1.20 MiB/s ETA 31s".
const progressTemplate pb.ProgressBarTemplate = `{{counters . }} {{bar . }} {{string . "files"}} {{percent . }} {{speed . "%s/s" "? B/s"}} {{rtime . "ETA %s" "in %s" "ETA ?"}}`

// ProgressBar is a Progress drawn with cheggaaa/pb/v3 on w (the command
// layer passes stderr: by default only when it is a terminal and without
// --quiet; --progress always draws it on a pipe or a file too).
type ProgressBar struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	bar   *pb.ProgressBar
	files int
	done  int
}

// NewProgressBar returns a Progress that draws on w; tty says whether w is
// a terminal. On anything else each redraw is one frame after a carriage
// return, without colours or padding to a terminal's width, and the last
// frame ends the line.
func NewProgressBar(w io.Writer, tty bool) *ProgressBar { return &ProgressBar{w: w, tty: tty} }

func (p *ProgressBar) Start(files int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files, p.done = files, 0
	p.bar = progressTemplate.New(0).SetTotal(bytes).SetWriter(p.w).Set(pb.Bytes, true).SetRefreshRate(100 * time.Millisecond)
	if !p.tty {
		p.bar.Set(pb.Terminal, false).Set(pb.ReturnSymbol, "\r").Set(pb.Color, false)
	}
	p.bar.Set("files", fmt.Sprintf("0/%d files", files))
	p.bar.Start()
}

func (p *ProgressBar) Add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Add64(n)
	}
}

func (p *ProgressBar) FileDone(string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.done++
		p.bar.Set("files", fmt.Sprintf("%d/%d files", min(p.done, p.files), p.files))
	}
}

func (p *ProgressBar) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}
