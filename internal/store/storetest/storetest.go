// Package storetest damages objects on an appliance store's disk the way a
// failing disk, a crash or a careless operator does, for tests and fault
// injection; whatever it does, the store must never serve the damaged
// bytes.
package storetest

import (
	"fmt"
	"os"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/store"
)

// ObjectFile is where f lives in the store under root.
func ObjectFile(root string, f content.File) string {
	return store.ObjectFile(root, store.Entry{Path: f.Path, Size: f.Size, SHA256: f.SHA256})
}

// FlipBit inverts the lowest bit of the byte at off in the file name: the
// same size, different bytes, as a tool writing in place or a rotting
// disk would leave it.
func FlipBit(name string, off int64) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		f.Close()
		return fmt.Errorf("flip a bit of %s at %d: %w", name, off, err)
	}
	b[0] ^= 1
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
