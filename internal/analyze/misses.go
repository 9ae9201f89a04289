package analyze

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"

	"github.com/parquet-go/parquet-go"
)

// MissRow is the bytes an appliance filled from the origin at a site for
// one miss class ("content": not placed there; "health": placed, but the
// appliance that holds it was down; "other").
type MissRow struct {
	Site  string
	Class string
	Bytes int64
}

// missRecord is the schema this package expects of DIR/misses Parquet
// files. No ingester writes them yet; the columns are a proposal for the
// fill engineer (site, class, bytes; other columns are ignored).
type missRecord struct {
	Site  string `parquet:"site"`
	Class string `parquet:"class"`
	Bytes int64  `parquet:"bytes"`
}

// LoadMisses sums miss bytes per site and class from
// DIR/misses/**/part-*.parquet. It returns (nil, false, nil) when there is
// no miss table.
func LoadMisses(dir string) ([]MissRow, bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "misses", "date=*", "hour=*", "part-*.parquet"))
	if err != nil {
		return nil, false, err
	}
	if len(files) == 0 {
		return nil, false, nil
	}
	sort.Strings(files)
	sum := make(map[[2]string]int64)
	for _, f := range files {
		if err := readMisses(f, sum); err != nil {
			return nil, true, err
		}
	}
	out := make([]MissRow, 0, len(sum))
	for k, b := range sum {
		out = append(out, MissRow{Site: k[0], Class: k[1], Bytes: b})
	}
	slices.SortFunc(out, func(a, b MissRow) int {
		if a.Site != b.Site {
			if a.Site < b.Site {
				return -1
			}
			return 1
		}
		if a.Class < b.Class {
			return -1
		}
		if a.Class > b.Class {
			return 1
		}
		return 0
	})
	return out, true, nil
}

func readMisses(path string, sum map[[2]string]int64) error {
	return withParquetFile(path, func(pf *parquet.File) error { return sumMisses(path, pf, sum) })
}

func sumMisses(path string, pf *parquet.File, sum map[[2]string]int64) error {
	for _, c := range []string{"site", "class", "bytes"} {
		if !hasColumn(pf, c) {
			return fmt.Errorf("%s: %w: miss table without column %q (want site, class, bytes)", path, ErrNewerSchema, c)
		}
	}
	r := parquet.NewGenericReader[missRecord](pf)
	defer r.Close()
	buf := make([]missRecord, 1024)
	for {
		n, rerr := r.Read(buf)
		for _, m := range buf[:n] {
			sum[[2]string{m.Site, m.Class}] += m.Bytes
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("%s: %w: %v", path, ErrBadFile, rerr)
		}
	}
}

func hasColumn(pf *parquet.File, name string) bool {
	for _, f := range pf.Schema().Fields() {
		if f.Name() == name {
			return true
		}
	}
	return false
}
