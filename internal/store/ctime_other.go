//go:build !linux

package store

import (
	"io/fs"
	"time"
)

// changeTime falls back to the modification time where the change time
// is not read portably; it misses a change that resets the mtime.
func changeTime(fi fs.FileInfo) time.Time { return fi.ModTime() }
