//go:build linux

package sshserver

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/pkg/sftp"

	"github.com/kubectl-dev/kubectl-dev/pkg/rootfs"
)

// ServeSFTPInRoot serves sftp on rw with every path resolved inside root
// (see rootfs.Root): a symlink in the tree cannot make a read or a write
// land outside it. startDir is the client's initial directory.
func ServeSFTPInRoot(rw io.ReadWriteCloser, root *rootfs.Root, startDir string) error {
	if startDir == "" {
		startDir = "/"
	}
	h := &rootHandler{root: root, start: path.Clean("/" + startDir)}
	opts := []sftp.RequestServerOption{sftp.WithStartDirectory(h.start)}
	srv := sftp.NewRequestServer(rw, sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h}, opts...)
	defer srv.Close()
	err := srv.Serve()
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// noOwner keeps the agent's IDs on what sftp creates (the agent runs as
// the app's user in same-user mode).
var noOwner = rootfs.Owner{UID: -1, GID: -1}

type rootHandler struct {
	root  *rootfs.Root
	start string
}

func (h *rootHandler) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	return h.root.OpenFile(r.Filepath, os.O_RDONLY, 0)
}

func (h *rootHandler) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	return h.OpenFile(r)
}

func (h *rootHandler) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) {
	pf := r.Pflags()
	flags := 0
	switch {
	case pf.Read && pf.Write:
		flags = os.O_RDWR
	case pf.Write:
		flags = os.O_WRONLY
	default:
		flags = os.O_RDONLY
	}
	if pf.Append {
		flags |= os.O_APPEND
	}
	if pf.Creat {
		flags |= os.O_CREATE
	}
	if pf.Trunc {
		flags |= os.O_TRUNC
	}
	if pf.Excl {
		flags |= os.O_EXCL
	}
	mode := os.FileMode(0o644)
	if r.AttrFlags().Permissions {
		mode = r.Attributes().FileMode().Perm()
	}
	return h.root.OpenFile(r.Filepath, flags, mode)
}

func (h *rootHandler) Filecmd(r *sftp.Request) error {
	switch r.Method {
	case "Setstat":
		return h.setstat(r)
	case "Rename", "PosixRename":
		return h.root.Rename(r.Filepath, r.Target)
	case "Rmdir":
		return h.root.RemoveDir(r.Filepath)
	case "Remove":
		return h.root.Remove(r.Filepath)
	case "Mkdir":
		return h.root.Mkdir(r.Filepath, 0o755, noOwner)
	case "Link":
		return h.root.Link(r.Filepath, r.Target)
	case "Symlink":
		// pkg/sftp: Filepath is the link's target, Target the new link.
		return h.root.SymlinkExcl(r.Filepath, r.Target, noOwner)
	}
	return sftp.ErrSSHFxOpUnsupported
}

func (h *rootHandler) PosixRename(r *sftp.Request) error { return h.root.Rename(r.Filepath, r.Target) }

func (h *rootHandler) setstat(r *sftp.Request) error {
	a := r.Attributes()
	f := r.AttrFlags()
	if f.Size {
		if err := h.root.Truncate(r.Filepath, int64(a.Size)); err != nil {
			return err
		}
	}
	if f.Permissions {
		if err := h.root.ChmodFollow(r.Filepath, a.FileMode()); err != nil {
			return err
		}
	}
	if f.UidGid {
		if err := h.root.Chown(r.Filepath, rootfs.Owner{UID: int(a.UID), GID: int(a.GID)}); err != nil {
			return err
		}
	}
	if f.Acmodtime {
		if err := h.root.ChtimesFollow(r.Filepath, a.AccessTime(), a.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

type listerAt []fs.FileInfo

func (l listerAt) ListAt(ls []os.FileInfo, offset int64) (int, error) {
	if offset >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(ls, l[offset:])
	if n < len(ls) {
		return n, io.EOF
	}
	return n, nil
}

func (h *rootHandler) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	switch r.Method {
	case "List":
		ents, err := h.root.ReadDir(r.Filepath)
		return listerAt(ents), err
	case "Stat":
		fi, err := h.root.Stat(r.Filepath)
		if err != nil {
			return nil, err
		}
		return listerAt{fi}, nil
	case "Lstat":
		return h.Lstat(r)
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

func (h *rootHandler) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	fi, err := h.root.Lstat(r.Filepath)
	if err != nil {
		return nil, err
	}
	return listerAt{fi}, nil
}

func (h *rootHandler) Readlink(p string) (string, error) { return h.root.Readlink(p) }

// RealPath resolves p (relative to the start directory) inside the root.
func (h *rootHandler) RealPath(p string) (string, error) {
	if !path.IsAbs(p) {
		p = path.Join(h.start, p)
	}
	return h.root.RealPath(p)
}

var _ sftp.LstatFileLister = (*rootHandler)(nil)
var _ sftp.ReadlinkFileLister = (*rootHandler)(nil)
var _ sftp.RealPathFileLister = (*rootHandler)(nil)
var _ sftp.OpenFileWriter = (*rootHandler)(nil)
var _ sftp.PosixRenameFileCmder = (*rootHandler)(nil)
