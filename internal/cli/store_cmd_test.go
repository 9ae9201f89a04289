package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"github.com/ocdn/ocdn/internal/content"
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
