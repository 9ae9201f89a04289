package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ocdn/ocdn/internal/measure"
)

func newMeasureCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "measure",
		Short: "Work with stored measurement reports (probe pulses and playback QoE)",
	}
	cmd.AddCommand(newMeasureExportCmd(g))
	return cmd
}

func newMeasureExportCmd(g *globals) *cobra.Command {
	var dataDir, format, table, outPath string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write stored measurement rows as CSV or JSONL",
		Long: `export reads the Parquet files of an ingest directory (DIR/pulses/... or
DIR/qoe/..., hive-partitioned by date and hour of receipt) and writes every row
as CSV with a header, or as JSON lines. Reports still in the write-ahead log
(received within the last minute, or left by a stopped control plane that has
not restarted) are not included.

Replicated control planes write one ingest directory each; give --data the
directory holding them (DIR/<replica>/pulses/...) to export their union, in which
every report appears once.

The files are ordinary Parquet; engines read them directly, e.g. in DuckDB:
  SELECT * FROM read_parquet('DIR/pulses/**/*.parquet', hive_partitioning = true);`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return fmt.Errorf("--data: name the ingest directory")
			}
			if _, err := os.Stat(dataDir); err != nil {
				return fmt.Errorf("--data %s: %w", dataDir, err)
			}
			var w io.Writer = cmd.OutOrStdout()
			var f *os.File
			if outPath != "" && outPath != "-" {
				var err error
				if f, err = os.Create(outPath); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				w = f
			}
			n, err := measure.Export(w, dataDir, table, format)
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				return err
			}
			if f != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d %s rows to %s\n", n, table, outPath)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", "", "ingest directory (the one holding pulses/, qoe/, wal/), or a directory of them (one per control-plane replica: their union is exported)")
	cmd.Flags().StringVar(&format, "format", "csv", "output format: csv or jsonl")
	cmd.Flags().StringVar(&table, "table", "pulses", "table: pulses, qoe or transport")
	cmd.Flags().StringVar(&outPath, "out", "", "output file (default standard output)")
	return cmd
}
