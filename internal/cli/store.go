package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/store"
)

func newStoreCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Operate on an appliance's object store: pre-load it, verify it",
		Long: `Operate on an appliance's on-disk object store (the directory given as "store"
in the appliance config, or --store with --standalone).`,
	}
	cmd.AddCommand(newStoreImportCmd(g), newStoreVerifyCmd(g))
	return cmd
}

func newStoreImportCmd(g *globals) *cobra.Command {
	var storeDir, catalogFile, capacity string
	cmd := &cobra.Command{
		Use:   "import --store DIR --catalog FILE SRC_DIR",
		Short: "Pre-load a store with the catalog's files found under SRC_DIR/title/file",
		Long: `Pre-load a store the way appliances are shipped already filled: every file of
the catalog found at SRC_DIR/title/file is hashed and stored, exactly as a fill
would store it. A file whose size or SHA-256 differs from the catalog is refused
and listed on standard error; nothing the store already holds is changed by a
refusal. Catalog files absent from SRC_DIR are counted, not an error.

Shows progress on a terminal. Exits non-zero if any file was refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			logger, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var capBytes config.ByteSize
			if capacity != "" {
				if capBytes, err = config.ParseByteSize(capacity); err != nil {
					return fmt.Errorf("--capacity: %w", err)
				}
			}
			cat, err := content.Load(catalogFile)
			if err != nil {
				return err
			}
			st, err := store.Open(storeDir, int64(capBytes), logger)
			if err != nil {
				return fmt.Errorf("open store %s: %w", storeDir, err)
			}
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			var opts []store.ImportOption
			bar := newProgressLine(cmd.ErrOrStderr())
			if bar != nil {
				opts = append(opts, store.WithProgress(func(p store.ImportProgress) {
					pct := 100.0
					if p.BytesTotal > 0 {
						pct = 100 * float64(p.Bytes) / float64(p.BytesTotal)
					}
					bar.show(fmt.Sprintf("importing %d/%d files, %s of %s (%.0f%%) %s",
						p.Files, p.FilesTotal, mb(p.Bytes), mb(p.BytesTotal), pct, p.Path))
				}))
			}
			res, err := st.Import(ctx, cat, args[0], opts...)
			bar.done()
			// A clean checkpoint even after an interruption: what was
			// imported was verified, and the appliance that opens this
			// store then trusts it without re-hashing it.
			if cerr := st.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("record the store's checkpoint: %w", cerr)
			}
			if err != nil {
				return err
			}
			for _, r := range res.Refused {
				fmt.Fprintf(cmd.ErrOrStderr(), "refused %s: %s\n", r.Path, r.Reason)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d files (%s), %d already stored, %d not in %s, %d refused\n",
				len(res.Imported), mb(res.Bytes), len(res.Present), len(res.Missing), args[0], len(res.Refused))
			if n := len(res.Refused); n > 0 {
				return fmt.Errorf("%d files refused: their size or SHA-256 does not match the catalog", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&storeDir, "store", "", "store directory to fill, created if missing (required)")
	cmd.Flags().StringVar(&catalogFile, "catalog", "", "catalog JSON file listing each file's size and SHA-256 (required)")
	cmd.Flags().StringVar(&capacity, "capacity", "", "refuse files beyond this store size, e.g. 500GiB (default: no limit)")
	cmd.MarkFlagRequired("store")
	cmd.MarkFlagRequired("catalog")
	return cmd
}

func newStoreVerifyCmd(g *globals) *cobra.Command {
	var storeDir string
	cmd := &cobra.Command{
		Use:   "verify --store DIR",
		Short: "Re-hash every object in a store and list any that are corrupt",
		Long: `Re-hash every object in a store against the size and SHA-256 in its name and
list the objects that no longer match, any that cannot be read, and any file
that is not named like an object. It changes nothing and is safe to run on the
store of a running appliance. Its verdicts are the appliance's: an object
listed here is one the appliance quarantines when it checks it (at start, if
the object changed since its last checkpoint, or when the scrubber reaches it).

Prints "N objects verified, all good" and exits 0, or lists the bad files and
exits non-zero. Shows progress on a terminal.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			st, err := store.OpenReadOnly(storeDir, logger)
			if err != nil {
				return err
			}
			ctx, stop := signalContext(cmd.Context(), cmd.ErrOrStderr())
			defer stop()
			var progress func(done, total int)
			bar := newProgressLine(cmd.ErrOrStderr())
			if bar != nil {
				progress = func(done, total int) { bar.show(fmt.Sprintf("verifying %d/%d objects", done, total)) }
			}
			problems, err := st.VerifyProgress(ctx, progress)
			bar.done()
			if err != nil {
				return err
			}
			n := len(st.List())
			if len(problems) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%d objects verified, all good\n", n)
				return nil
			}
			for _, p := range problems {
				fmt.Fprintf(cmd.OutOrStdout(), "BAD %s: %s\n", p.Path, p.Reason)
			}
			return fmt.Errorf("%d problems in %d objects of %s", len(problems), n, storeDir)
		},
	}
	cmd.Flags().StringVar(&storeDir, "store", "", "store directory to verify (required)")
	cmd.MarkFlagRequired("store")
	return cmd
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// progressLine redraws one status line on a terminal, at most ten times
// a second. newProgressLine returns nil when w is not a terminal, and a
// nil progressLine does nothing, so output stays clean in pipes and logs.
type progressLine struct {
	w    io.Writer
	last time.Time
	drew bool
}

func newProgressLine(w io.Writer) *progressLine {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &progressLine{w: w}
}

func (p *progressLine) show(s string) {
	if p == nil || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	if len(s) > 100 {
		s = s[:100]
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s", s)
	p.drew = true
}

func (p *progressLine) done() {
	if p != nil && p.drew {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// errExists is returned when a command would overwrite a file.
var errExists = errors.New("already exists")
