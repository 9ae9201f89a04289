// Package fill provides the appliance's fill agent: it downloads the files
// of its manifest during the site's nightly fill window (urgent files
// outside it, under their own byte budget) from a ranked list of sources —
// peers of the same cluster, then other sites, then the origin — under a
// bytes/s rate cap and a concurrency limit, resuming broken transfers with
// Range requests and verifying every file's SHA-256 before it becomes
// servable. Files dropped from the manifest are retired — no longer
// reported held, so steering stops sending clients to them — once the
// whole manifest has landed or their room is needed, and deleted only
// after the control plane has acknowledged that (retire.go).
package fill

import "github.com/ocdn/ocdn/internal/clock"

// Clock is where the agent reads the time of day and waits (see
// internal/clock; the lab passes a scaled one).
type Clock = clock.Clock
