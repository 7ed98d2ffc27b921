//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func (b *bench) initialSync(ctx context.Context, pod *corev1.Pod, res *results) error {
	local, err := os.MkdirTemp("", "bench-tree-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(local)
	raw := make([]byte, *size*3/4)
	var total int64
	for i := range *files {
		dir := filepath.Join(local, fmt.Sprintf("pkg%03d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		_, _ = rand.Read(raw)
		data := []byte(base64.StdEncoding.EncodeToString(raw))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("mod%03d.py", i%100)), data, 0o644); err != nil {
			return err
		}
		total += int64(len(data))
	}
	res.random = &syncSet{files: *files, bytes: total, what: "random base64 text: no repeats, only its 64-letter alphabet to compress (a quarter), the worst case"}
	b.logf("tree: %d files, %d bytes", *files, total)

	var dirs []string
	defer func() {
		// Free the space once every run is done (the last devsync tree is
		// kept for the re-sync figure until then).
		args := append([]string{"exec", "-n", b.ns, pod.Name, "-c", "app", "--", "rm", "-rf"}, dirs...)
		_, _ = b.kubectl(context.Background(), nil, args...)
	}()
	last, err := b.syncRounds(ctx, pod, local, "r", res.random, &dirs)
	if err != nil {
		return err
	}
	// One changed file, a new connection: the whole tree is compared again.
	if err := os.WriteFile(filepath.Join(local, "pkg000/mod000.py"), []byte("changed\n"), 0o644); err != nil {
		return err
	}
	if res.resyncOne, err = timeit(b, "devsync --once, 1 file changed", func() error {
		_, err := b.kubectl(ctx, nil, "devsync", "-n", b.ns, local, "deploy/demo", "--dest", last, "--once", "-q")
		return err
	}); err != nil {
		return err
	}
	if *sourceTree == "" {
		return nil
	}
	src, n, total, err := copySourceTree(*sourceTree, *files)
	if err != nil {
		return fmt.Errorf("--source-tree: %w", err)
	}
	defer os.RemoveAll(src)
	res.source = &syncSet{files: n, bytes: total, what: fmt.Sprintf("source code: the first %d files of at most 64 KiB of %s (%s), in path order", n, *sourceTree, runtime.Version())}
	b.logf("source tree: %d files, %d bytes", n, total)
	_, err = b.syncRounds(ctx, pod, src, "s", res.source, &dirs)
	return err
}

// syncSet is one tree's initial-sync figures.
type syncSet struct {
	files                                  int
	bytes                                  int64
	what                                   string
	rounds                                 int
	syncDevsync, syncCp, syncTar, syncTarZ time.Duration
	pairedCp, pairedTar, pairedTarZ        float64
	runs                                   string
}

// syncRounds copies local into the pod with each method, --rounds times,
// interleaved, and fills set. Every run writes into a directory of its own
// (added to dirs) and nothing is deleted until all runs are done, and the
// order of the methods rotates from round to round. On ext4 without a
// journal (this machine's disk), creating files within about 30 s of a
// mass delete is 10-20x slower (find_inode_bit skips every recently
// deleted inode), so a delete between runs would penalise whichever method
// runs next. It returns the last devsync destination.
func (b *bench) syncRounds(ctx context.Context, pod *corev1.Pod, local, tag string, set *syncSet, dirs *[]string) (string, error) {
	var dDevsync, dCp, dTar, dTarZ []time.Duration
	dest := func(r int, m string) string { return fmt.Sprintf("/srv/%s%d-%s", tag, r, m) }
	methods := []struct {
		name string
		dir  string
		run  func(dest string) error
		ds   *[]time.Duration
	}{
		{"devsync --once", "devsync", func(dest string) error {
			_, err := b.kubectl(ctx, nil, "devsync", "-n", b.ns, local, "deploy/demo", "--dest", dest, "--once", "-q")
			return err
		}, &dDevsync},
		{"kubectl cp", "cp", func(dest string) error {
			_, err := b.kubectl(ctx, nil, "cp", "-n", b.ns, "-c", "app", local, pod.Name+":"+dest)
			return err
		}, &dCp},
		{"tar | kubectl exec tar x", "tar", func(dest string) error {
			tar := exec.CommandContext(ctx, "tar", "c", "-C", local, ".")
			pipe, err := tar.StdoutPipe()
			if err != nil {
				return err
			}
			if err := tar.Start(); err != nil {
				return err
			}
			_, err = b.kubectl(ctx, pipe, "exec", "-i", "-n", b.ns, pod.Name, "-c", "app", "--", "sh", "-c", "mkdir -p "+dest+" && tar x -C "+dest)
			if werr := tar.Wait(); err == nil {
				err = werr
			}
			return err
		}, &dTar},
		{"tar cz | kubectl exec tar xz", "tarz", func(dest string) error {
			tar := exec.CommandContext(ctx, "tar", "cz", "-C", local, ".")
			pipe, err := tar.StdoutPipe()
			if err != nil {
				return err
			}
			if err := tar.Start(); err != nil {
				return err
			}
			_, err = b.kubectl(ctx, pipe, "exec", "-i", "-n", b.ns, pod.Name, "-c", "app", "--", "sh", "-c", "mkdir -p "+dest+" && tar xz -C "+dest)
			if werr := tar.Wait(); err == nil {
				err = werr
			}
			return err
		}, &dTarZ},
	}
	for r := range *rounds {
		for i := range methods {
			m := methods[(i+r)%len(methods)]
			dir := dest(r, m.dir)
			*dirs = append(*dirs, dir)
			settle()
			d, err := timeit(b, m.name, func() error { return m.run(dir) })
			if err != nil {
				return "", err
			}
			*m.ds = append(*m.ds, d)
		}
	}
	set.syncDevsync, set.syncCp, set.syncTar, set.syncTarZ = pct(dDevsync, 50), pct(dCp, 50), pct(dTar, 50), pct(dTarZ, 50)
	set.pairedCp, set.pairedTar, set.pairedTarZ = pairedRatio(dCp, dDevsync), pairedRatio(dTar, dDevsync), pairedRatio(dTarZ, dDevsync)
	set.runs = fmt.Sprintf("devsync %s; kubectl cp %s; tar | exec %s; tar cz | exec %s", msList(dDevsync), msList(dCp), msList(dTar), msList(dTarZ))
	set.rounds = *rounds
	return dest(*rounds-1, "devsync"), nil
}

// copySourceTree copies the first n regular files of at most 64 KiB under
// root, in path order, into a new temporary directory: a tree of real
// source files (code, docs, test data) of the size the benchmark asks for.
func copySourceTree(root string, n int) (dir string, copied int, total int64, err error) {
	dir, err = os.MkdirTemp("", "bench-source-")
	if err != nil {
		return "", 0, 0, err
	}
	stop := errors.New("enough")
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if copied >= n {
			return stop
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() > 64<<10 {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		to := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			return err
		}
		copied++
		total += int64(len(data))
		return nil
	})
	if errors.Is(err, stop) {
		err = nil
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", 0, 0, err
	}
	return dir, copied, total, nil
}
