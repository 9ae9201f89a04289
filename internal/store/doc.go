// Package store provides an appliance's on-disk object store, which never
// serves a byte that differs from the catalog, whatever happened to the
// disk while the appliance was running, crashed or switched off.
//
// Objects are addressed by their catalog path (title/file) and kept in a
// sharded layout no request can escape (layout.go). A write goes to a
// temporary file, is checked against the catalog's size and SHA-256, and
// only then fsynced, renamed into place and its directory fsynced
// (internal/atomicfile), so a crash at any moment never leaves a partial
// or wrong object visible: writes in progress live in tmp/, which Open
// empties.
//
// # What is checked, and when
//
// An object's name carries its size and SHA-256. Open lists every object
// and compares each file's size with its name (a stat per object, which a
// directory walk pays anyway); one that differs is quarantined at once.
// Hashing everything at every start is not an option (100 TB take more
// than a day to read), so Open re-hashes only objects that may have
// changed since they were verified, and tells them apart by the change
// time (ctime) the file system gives every write, truncation, rename or
// chmod, which no system call can set back:
//
//   - A running store records a checkpoint in checkpoint.json every
//     CheckpointInterval, and a final one, marked clean, when Run returns
//     or Close is called. A checkpoint is a reading of the file system's
//     clock such that every object file changed before it had been
//     verified; it advances only while nothing is pending.
//   - After a clean shutdown, the objects re-hashed are exactly those
//     changed while the store was closed: truncated, bit-flipped by a
//     tool, restored from elsewhere.
//   - After a crash, they are those plus whatever was written since the
//     last checkpoint (at most a minute of fill).
//   - With no usable checkpoint (a store from before checkpoints, a
//     damaged checkpoint.json, or a file-system clock now behind the
//     checkpoint), every object is re-hashed: there is no way to know.
//
// Open re-hashes up to 64 MiB of such objects itself, so a crash's few
// stragglers are served from the first request; the rest are pending:
// not served (a client gets a 404 and fails over to its next URL), not
// reported as held (List), yet not downloaded again by fill (Holds).
// Run verifies them in the background as fast as the disk allows, taking
// first those clients ask for. Objects that pass are served; objects that
// fail are quarantined.
//
// What the checkpoint cannot see is a change made behind a running
// store's back, or a disk that rots silently: Open(path) compares the
// file's size with the entry's on every open, and the scrubber, on by
// default at DefaultScrubRate, re-hashes every object in turn.
//
// # Quarantine
//
// An object that fails any check (size at open, re-hash, scrub) is moved
// to quarantine/ as evidence and dropped from the index. It is then no
// longer listed, so the appliance's next heartbeat stops reporting it as
// held, the control plane stops steering to it and puts it back in the
// appliance's fill plan, and fill downloads a good copy. Every check goes
// through one function, so `ocdn store verify` (Verify on a read-only
// store) gives the same verdicts the appliance acts on.
package store
