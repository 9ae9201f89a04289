package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ocdn/ocdn/internal/content"
)

func newCatalogCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Make catalogs: the JSON list of files (title/file) with size, SHA-256, kind and bitrate",
	}
	spec := content.DefaultSynthSpec()
	var out string
	synth := &cobra.Command{
		Use:   "synth",
		Short: "Make a synthetic catalog whose bytes are derived from each file's path",
		Long: `Make a synthetic catalog: each title gets one video file per rung of the bitrate
ladder (and an audio file), sized bitrate × duration. Their bytes are derived
deterministically from the path, so an origin can serve them without storing
anything and every copy can be verified.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := content.Synth(spec)
			if err != nil {
				return err
			}
			return writeCatalog(cmd, c, out)
		},
	}
	synth.Flags().IntVar(&spec.Titles, "titles", spec.Titles, "number of titles (t0000, t0001, …)")
	synth.Flags().IntSliceVar(&spec.LadderKbps, "ladder", spec.LadderKbps, "video bitrate ladder in kbit/s, one file per rung")
	synth.Flags().DurationVar(&spec.Duration, "duration", spec.Duration, "playback duration of each title")
	synth.Flags().IntVar(&spec.AudioKbps, "audio-kbps", spec.AudioKbps, "audio bitrate in kbit/s (0 for no audio file)")
	synth.Flags().StringVarP(&out, "out", "o", "", "write the catalog to this file instead of standard output")

	var buildOut string
	build := &cobra.Command{
		Use:   "build DIR",
		Short: "Make a catalog of the real files in DIR/title/file",
		Long: `Make a catalog of every regular file exactly two levels below DIR (DIR/title/file),
hashing each one. Files at other depths or with names that are not safe in a URL
are listed on standard error and left out.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, skipped, err := content.Build(args[0])
			if err != nil {
				return err
			}
			for _, s := range skipped {
				fmt.Fprintf(cmd.ErrOrStderr(), "skipped %s: not of the form title/file with safe names\n", s)
			}
			return writeCatalog(cmd, c, buildOut)
		},
	}
	build.Flags().StringVarP(&buildOut, "out", "o", "", "write the catalog to this file instead of standard output")
	cmd.AddCommand(synth, build)
	return cmd
}

func writeCatalog(cmd *cobra.Command, c *content.Catalog, out string) error {
	if out != "" {
		if err := c.Save(out); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: %d files, %.1f MB\n", out, len(c.Files), float64(c.TotalBytes())/1e6)
		return nil
	}
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	_, err = cmd.OutOrStdout().Write(b)
	return err
}
