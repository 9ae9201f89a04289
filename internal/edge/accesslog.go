package edge

import (
	"bufio"
	"context"
	"io"
	"sync"
	"time"
)

// BufferedWriter batches access-log lines so that a request costs a memory
// copy rather than a write(2). Lines reach the file within the flush
// interval, or sooner when the buffer fills. Safe for concurrent use.
type BufferedWriter struct {
	mu sync.Mutex
	bw *bufio.Writer
}

// NewBufferedWriter buffers up to size bytes (default 64 KiB) for w.
func NewBufferedWriter(w io.Writer, size int) *BufferedWriter {
	if size <= 0 {
		size = 64 << 10
	}
	return &BufferedWriter{bw: bufio.NewWriterSize(w, size)}
}

// Write implements io.Writer. A slog handler writes one whole record per
// call, so lines are never interleaved.
func (b *BufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bw.Write(p)
}

// Flush writes out what is buffered.
func (b *BufferedWriter) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bw.Flush()
}

// FlushEvery flushes every d until ctx ends, then once more. The caller
// owns it as a goroutine and waits for it before closing the file.
func (b *BufferedWriter) FlushEvery(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.Flush()
			return
		case <-t.C:
			b.Flush()
		}
	}
}
