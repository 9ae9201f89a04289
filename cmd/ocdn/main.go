// Command ocdn is the single binary of the ocdn CDN; see `ocdn --help`.
package main

import (
	"os"

	"github.com/ocdn/ocdn/internal/cli"
)

func main() { os.Exit(cli.Execute()) }
