package store

// SetOpenVerifyBytes changes how much Open re-hashes itself, so tests can
// leave objects pending for Run; the returned func restores it.
func SetOpenVerifyBytes(n int64) (restore func()) {
	old := openVerifyBytes
	openVerifyBytes = n
	return func() { openVerifyBytes = old }
}

// Checkpoint records a checkpoint as a running store does every
// CheckpointInterval.
func Checkpoint(s *Store) error { return s.checkpoint(false) }
