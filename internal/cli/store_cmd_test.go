package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/daemon"
)

// storeFixture writes SRC/title/file files and their catalog.
func storeFixture(t *testing.T) (src, catalogFile string) {
	t.Helper()
	dir := t.TempDir()
	src = filepath.Join(dir, "src")
	for path, data := range map[string]string{
		"t1/index.m3u8": "#EXTM3U\n",
		"t1/video.mp4":  strings.Repeat("v", 5000),
		"t2/audio.mp4":  "audio",
	} {
		p := filepath.Join(src, filepath.FromSlash(path))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cat, _, err := content.Build(src)
	if err != nil {
		t.Fatal(err)
	}
	catalogFile = filepath.Join(dir, "catalog.json")
	if err := cat.Save(catalogFile); err != nil {
		t.Fatal(err)
	}
	return src, catalogFile
}

func TestStoreImportAndVerifyCommands(t *testing.T) {
	src, catalogFile := storeFixture(t)
	st := filepath.Join(t.TempDir(), "store")

	out, errOut, err := runCLI(t, "store", "import", "--store", st, "--catalog", catalogFile, src)
	if err != nil {
		t.Fatalf("store import = %v\n%s", err, errOut)
	}
	if want := "imported 3 files (0.0 MB), 0 already stored, 0 not in " + src + ", 0 refused\n"; out != want {
		t.Errorf("store import printed %q, want %q", out, want)
	}
	if errOut != "" {
		t.Errorf("store import wrote %q to a non-terminal stderr, want nothing", errOut)
	}

	out, _, err = runCLI(t, "store", "verify", "--store", st)
	if err != nil || out != "3 objects verified, all good\n" {
		t.Errorf("store verify = %q, %v; want all good", out, err)
	}

	// Corrupt one object on disk: verify lists it and fails.
	var victim string
	filepath.WalkDir(filepath.Join(st, "objects"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, "video.mp4~") {
			victim = p
		}
		return nil
	})
	if err := os.WriteFile(victim, []byte(strings.Repeat("V", 5000)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = runCLI(t, "store", "verify", "--store", st)
	if err == nil || !strings.HasPrefix(out, "BAD t1/video.mp4: sha256 ") {
		t.Errorf("store verify of a corrupt store = %q, %v; want BAD t1/video.mp4 and an error", out, err)
	}

	// A source file that does not match the catalog is refused and listed.
	if err := os.WriteFile(filepath.Join(src, "t2", "audio.mp4"), []byte("AUDIO"), 0o644); err != nil {
		t.Fatal(err)
	}
	st2 := filepath.Join(t.TempDir(), "store2")
	out, errOut, err = runCLI(t, "store", "import", "--store", st2, "--catalog", catalogFile, src)
	if err == nil || !strings.Contains(err.Error(), "1 files refused") {
		t.Errorf("store import with a bad file = %v, want an error saying 1 file was refused", err)
	}
	if !strings.HasPrefix(errOut, "refused t2/audio.mp4: ") || !strings.Contains(out, "imported 2 files") {
		t.Errorf("store import with a bad file printed\nstdout %q\nstderr %q", out, errOut)
	}
}

// TestStoreVerifyAgreesWithAppliance: on one damaged store, `ocdn store
// verify` lists exactly the objects an appliance opening that store
// quarantines, for the same reasons (they share one check), and an
// object merely touched (its ctime moved) is re-hashed by the appliance,
// found good and kept.
func TestStoreVerifyAgreesWithAppliance(t *testing.T) {
	src, catalogFile := storeFixture(t)
	st := filepath.Join(t.TempDir(), "store")
	if _, errOut, err := runCLI(t, "store", "import", "--store", st, "--catalog", catalogFile, src); err != nil {
		t.Fatalf("store import = %v\n%s", err, errOut)
	}
	object := func(name string) string {
		t.Helper()
		m, _ := filepath.Glob(filepath.Join(st, "objects", "*", "*", name+"~*"))
		if len(m) != 1 {
			t.Fatalf("object files for %s: %q", name, m)
		}
		return m[0]
	}
	if err := os.Truncate(object("video.mp4"), 4000); err != nil {
		t.Fatal(err)
	}
	audio := object("audio.mp4")
	b, _ := os.ReadFile(audio)
	b[2] ^= 0x20
	if err := os.WriteFile(audio, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(object("index.m3u8"), 0o600); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(st, "objects", "notes.txt")
	os.WriteFile(stray, []byte("an operator's notes"), 0o644)

	out, _, err := runCLI(t, "store", "verify", "--store", st)
	if err == nil {
		t.Fatalf("store verify of a damaged store = nil error; printed %q", out)
	}
	verdicts := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		path, reason, ok := strings.Cut(strings.TrimPrefix(line, "BAD "), ": ")
		if !ok {
			t.Fatalf("store verify printed %q", line)
		}
		verdicts[path] = reason
	}
	if !strings.HasPrefix(verdicts[stray], "unexpected file") {
		t.Errorf("store verify says of the stray %q, want an unexpected file", verdicts[stray])
	}
	delete(verdicts, stray) // the appliance ignores it, serving nothing from it

	// The appliance as an operator starts it (standalone, from a config).
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	mustOCDN(t, "urlsign", "keygen", "--out", keyFile)
	var cfg config.ApplianceDaemon
	yaml := fmt.Sprintf("standalone: true\nlisten: %s\nstore: %s\nkey_file: %s\n", freeAddr(t, "127.0.0.1"), st, keyFile)
	if err := config.Decode("standalone.yaml", []byte(yaml), &cfg); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.NewAppliance(&cfg, daemon.Hooks{}, false)
	if err != nil {
		t.Fatal(err)
	}
	a := d.Appliance()
	defer a.Kill()
	rep := a.Store().Opened()
	quarantined := map[string]string{}
	for _, p := range rep.Quarantined {
		quarantined[p.Path] = p.Reason
	}
	if diff := cmp.Diff(verdicts, quarantined); diff != "" {
		t.Errorf("store verify's verdicts (-) differ from the appliance's quarantine (+):\n%s", diff)
	}
	if len(quarantined) != 2 || rep.Rehashed != 1 || rep.Trusted != 0 {
		t.Errorf("appliance opened the store with %+v; want 2 quarantined and the touched playlist re-hashed", rep)
	}
	if want := "size 4000, want 5000"; verdicts["t1/video.mp4"] != want {
		t.Errorf("truncated video judged %q, want %q", verdicts["t1/video.mp4"], want)
	}

	// What the appliance left is what verify now passes: only the stray.
	out, _, _ = runCLI(t, "store", "verify", "--store", st)
	if !strings.HasPrefix(out, "BAD "+stray) || strings.Count(out, "BAD ") != 1 {
		t.Errorf("store verify after the appliance quarantined = %q, want the stray only", out)
	}
}

func TestStoreVerifyNeedsAStore(t *testing.T) {
	_, _, err := runCLI(t, "store", "verify", "--store", filepath.Join(t.TempDir(), "typo"))
	if err == nil || !strings.Contains(err.Error(), "not an ocdn store") {
		t.Errorf("store verify of a missing dir = %v, want 'not an ocdn store'", err)
	}
}

// TestHelpExplainsEveryFlag checks that every flag of the commands added
// here has a usage text, and --help shows it.
func TestHelpExplainsEveryFlag(t *testing.T) {
	for _, args := range [][]string{
		{"store", "import"}, {"store", "verify"}, {"urlsign"}, {"urlsign", "keygen"},
	} {
		root := NewRoot(nil, nil)
		cmd, _, err := root.Find(args)
		if err != nil {
			t.Fatalf("Find(%q) = %v", args, err)
		}
		if cmd.Long == "" {
			t.Errorf("ocdn %s has no long help", strings.Join(args, " "))
		}
		out, _, err := runCLI(t, append(args, "--help")...)
		if err != nil {
			t.Fatalf("ocdn %s --help = %v", strings.Join(args, " "), err)
		}
		var missing []string
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Usage == "" || !strings.Contains(out, "--"+f.Name) {
				missing = append(missing, f.Name)
			}
		})
		if diff := cmp.Diff([]string(nil), missing); diff != "" {
			t.Errorf("ocdn %s --help: flags without usage (-want +got):\n%s", strings.Join(args, " "), diff)
		}
	}
}
