package devsync

import (
	"fmt"
	"io"
	"sync"
	"time"

	pb "github.com/cheggaaa/pb/v3"
)

// progressTemplate shows bytes and files: "12 MiB / 50 MiB [====>   ] 3/10 files 24%".
const progressTemplate pb.ProgressBarTemplate = `{{counters . }} {{bar . }} {{string . "files"}} {{percent . }} {{speed . }}`

// ProgressBar is a Progress drawn with cheggaaa/pb/v3 on w (the command
// layer passes stderr, and no bar at all when stderr is not a terminal or
// with --quiet).
type ProgressBar struct {
	w     io.Writer
	mu    sync.Mutex
	bar   *pb.ProgressBar
	files int
	done  int
}

// NewProgressBar returns a Progress that draws on w.
func NewProgressBar(w io.Writer) *ProgressBar { return &ProgressBar{w: w} }

func (p *ProgressBar) Start(files int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files, p.done = files, 0
	p.bar = progressTemplate.New(0).SetTotal(bytes).SetWriter(p.w).Set(pb.Bytes, true).SetRefreshRate(100 * time.Millisecond)
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
