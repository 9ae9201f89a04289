package edge

import (
	"mime"
	"os"
	"path"
	"sync"

	"github.com/ocdn/ocdn/internal/store"
)

// fileCache keeps descriptors of recently served objects open, like
// nginx's open_file_cache: os.Open of a regular file costs an openat, four
// fcntl calls and a failing epoll_ctl in Go, about a tenth of a 64 KiB
// request. Each request takes a descriptor for itself and gives it back.
//
// Correctness: a descriptor is filed under the store.Entry (path, size,
// SHA-256) that store.Open returned with it, and objects are immutable
// files published by rename, so a descriptor always reads exactly the
// verified bytes of its entry. The one way the same entry can name a
// different inode is quarantine and re-fill; both bump the store
// generation, and any change of generation drops every idle descriptor.
// Lookup is still asked on every request, so a removed object is never
// served from the cache.
//
// An object's header values (objectMeta) are filed with its descriptors,
// so a request for a hot object neither formats its ETag nor looks up
// its Content-Type.
type fileCache struct {
	st  *store.Store
	max int // idle descriptors kept; ≤ 0 disables the cache

	mu   sync.Mutex
	gen  uint64
	idle map[store.Entry]*idleFiles
	n    int
}

// idleFiles are an object's idle descriptors and its header values.
type idleFiles struct {
	fs   []*os.File
	meta *objectMeta
}

// objectMeta are the response header values of one store entry; each
// slice has capacity 1, so a header map appending to one copies it.
type objectMeta struct {
	etag  []string // the strong ETag "<sha256>"
	ctype []string // Content-Type, by the path's extension
}

func newObjectMeta(e store.Entry) *objectMeta {
	ct := hdrOctetStream
	if t := mime.TypeByExtension(path.Ext(e.Path)); t != "" {
		ct = []string{t}
	}
	return &objectMeta{etag: []string{`"` + e.SHA256 + `"`}, ctype: ct}
}

func newFileCache(st *store.Store, max int) *fileCache {
	return &fileCache{st: st, max: max, idle: map[store.Entry]*idleFiles{}}
}

// openFile is a descriptor on loan from the cache.
type openFile struct {
	*os.File
	e    store.Entry
	meta *objectMeta
	gen  uint64
}

func (c *fileCache) open(p string) (openFile, error) {
	if c.max <= 0 {
		f, e, err := c.st.Open(p)
		if err != nil {
			return openFile{}, err
		}
		return openFile{File: f, e: e, meta: newObjectMeta(e)}, nil
	}
	e, gen, ok := c.st.LookupGen(p)
	if !ok {
		return openFile{}, store.ErrNotFound
	}
	c.mu.Lock()
	if gen != c.gen {
		c.flushLocked()
		c.gen = gen
	}
	var meta *objectMeta
	if in := c.idle[e]; in != nil {
		meta = in.meta
		if fs := in.fs; len(fs) > 0 {
			f := fs[len(fs)-1]
			fs[len(fs)-1] = nil
			if len(fs) == 1 && len(c.idle) > c.max {
				delete(c.idle, e)
			} else {
				// The emptied entry stays for the descriptor's return:
				// a hot object takes and gives back one on every
				// request, which otherwise cost a map delete, an insert
				// and an allocation each time. release removes it when
				// the descriptor does not come back.
				in.fs = fs[:len(fs)-1]
			}
			c.n--
			c.mu.Unlock()
			return openFile{File: f, e: e, meta: meta, gen: gen}, nil
		}
	}
	c.mu.Unlock()
	f, e2, err := c.st.Open(p)
	if err != nil {
		return openFile{}, err
	}
	if meta == nil || e2 != e {
		meta = newObjectMeta(e2)
	}
	return openFile{File: f, e: e2, meta: meta, gen: gen}, nil
}

// release returns f to the cache, or closes it when it is not reusable
// (a read went wrong), the cache is full or the store has changed.
func (c *fileCache) release(f openFile, reusable bool) {
	if c.max <= 0 {
		f.Close()
		return
	}
	c.mu.Lock()
	in := c.idle[f.e]
	if !reusable || f.gen != c.gen || c.n >= c.max {
		if in != nil && len(in.fs) == 0 {
			delete(c.idle, f.e) // no emptied slot left behind
		}
		c.mu.Unlock()
		f.Close()
		return
	}
	if in == nil {
		in = &idleFiles{meta: f.meta}
		c.idle[f.e] = in
	}
	in.fs = append(in.fs, f.File)
	c.n++
	c.mu.Unlock()
}

func (c *fileCache) flushLocked() {
	for e, in := range c.idle {
		for _, f := range in.fs {
			f.Close()
		}
		delete(c.idle, e)
	}
	c.n = 0
}

// Close closes every idle descriptor.
func (c *fileCache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
}
