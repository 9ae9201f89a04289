//go:build linux

package store

import (
	"io/fs"
	"syscall"
	"time"
)

// changeTime is when the file's inode last changed (ctime): any write,
// truncation, rename or chmod sets it to the file system's clock, and no
// system call sets it to anything else, so it says whether an object may
// have been touched since a checkpoint.
func changeTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	}
	return fi.ModTime()
}
