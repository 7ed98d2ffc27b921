package syncproto

import "io/fs"

// The set-id bits of mode_t, as the protocol carries them on every platform
// (the client may run on macOS or Windows; the agent on Linux).
const (
	modeSetuid = 0o4000
	modeSetgid = 0o2000
	modeSticky = 0o1000
)

// EntryTypeOf is the entry type of a file of mode m.
func EntryTypeOf(m fs.FileMode) EntryType {
	switch {
	case m.IsRegular():
		return TypeFile
	case m.IsDir():
		return TypeDir
	case m&fs.ModeSymlink != 0:
		return TypeSymlink
	}
	return TypeOther
}

// ModeBits returns the permission and set-id bits as mode_t bits.
func ModeBits(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= modeSetuid
	}
	if m&fs.ModeSetgid != 0 {
		u |= modeSetgid
	}
	if m&fs.ModeSticky != 0 {
		u |= modeSticky
	}
	return u
}
