package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/daemon"
)

// labHooks are hidden flags `ocdn lab --processes` passes to the appliance
// processes it starts: the Go-only hooks (daemon.Hooks) that no config
// file sets, so that a daemon in its own process runs the lab's compressed
// fill clock and its fault injection exactly as an in-process one does.
type labHooks struct {
	fillClock   string
	corruptFill string
}

func (l *labHooks) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&l.fillClock, "lab-fill-clock", "", "for ocdn lab: the compressed fill clock (start,factor,origin)")
	cmd.Flags().StringVar(&l.corruptFill, "lab-corrupt-fill", "", "for ocdn lab: files whose fill requests get wrong bytes (comma-separated)")
	cmd.Flags().MarkHidden("lab-fill-clock")
	cmd.Flags().MarkHidden("lab-corrupt-fill")
}

func (l *labHooks) hooks() (daemon.Hooks, error) {
	var h daemon.Hooks
	if l.fillClock != "" {
		c, err := clock.ParseScaled(l.fillClock)
		if err != nil {
			return h, err
		}
		h.FillClock = c
	}
	if l.corruptFill != "" {
		h.CorruptFill = strings.Split(l.corruptFill, ",")
	}
	return h, nil
}
