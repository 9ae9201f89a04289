package soak

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/cpstore/pgtest"
)

// `make soak` runs TestSoak with these; `make test` runs it with the
// defaults: two minutes, every fault kind at least once.
var (
	soakDuration = flag.Duration("soak.duration", 2*time.Minute, "how long the lab streams under faults")
	soakSeed     = flag.Uint64("soak.seed", 1, "seed of the fault schedule")
	soakGap      = flag.Duration("soak.gap", 10*time.Second, "mean time between fault starts")
	soakOctet    = flag.Int("soak.octet", 20, "appliances at 127.1.OCTET.*, apart from other runs on the machine")
)

// TestSoak is the chaos soak (package doc). It fails if any invariant
// failed, or if a fault kind was never injected.
func TestSoak(t *testing.T) {
	if os.Geteuid() != 0 {
		msg := "the chaos soak mounts a tmpfs per appliance store (the disk it fills) and needs root"
		if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dsn := pgtest.Start(t)
	bin := filepath.Join(t.TempDir(), "ocdn")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ocdn/ocdn/cmd/ocdn").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ocdn: %v\n%s", err, out)
	}
	work := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "soak.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cfg := Config{
		Duration: *soakDuration, Seed: *soakSeed, Gap: *soakGap, ApplianceOctet: *soakOctet,
		Binary: bin, ControlStore: dsn, WorkDir: work,
		Status: os.Stderr, Logger: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if *soakDuration <= 5*time.Minute {
		// The short soak in `make test` shares two cores with the rest.
		cfg.ClientShare = 0.5
	}
	// `make soak` turns go test's timeout off; this bounds the run.
	ctx, cancel := context.WithTimeout(context.Background(), *soakDuration+15*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("soak: %v", err)
	}
	res.Print(os.Stdout)
	for _, k := range Kinds {
		if res.Injected[k] == 0 {
			t.Errorf("fault kind %s was never injected", k)
		}
	}
	if !res.OK() {
		t.Errorf("an invariant failed (the summary above names it and its first counterexamples)")
		b, _ := os.ReadFile(logPath)
		if len(b) > 8<<10 {
			b = b[len(b)-8<<10:]
		}
		t.Logf("soak log (warnings and errors, the last 8 KiB):\n%s", b)
	}
}
