package content

import (
	"fmt"
	"strings"
	"sync"

	"github.com/ocdn/ocdn/internal/media"
)

// Media titles of a synthetic catalog are named hls0000, hls0001, …: the
// name alone says that a file's bytes are internal/media's video rather
// than a keystream, since SynthReader is given only a path and a size.

// maxMediaTitles bounds SynthSpec.MediaTitles: each title is about 12 MB
// generated in memory.
const maxMediaTitles = 100

// MediaTitle is the name of the i-th media title.
func MediaTitle(i int) string { return fmt.Sprintf("hls%04d", i) }

// IsMediaTitle reports whether title is named as a media title.
func IsMediaTitle(title string) bool {
	digits, ok := strings.CutPrefix(title, "hls")
	if !ok || len(digits) != 4 {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
}

// mediaCache keeps the last few generated titles: an origin serving a
// media title reads it range by range, and generating one takes a
// noticeable fraction of a second. The bytes are immutable.
var mediaCache struct {
	sync.Mutex
	order  []string
	titles map[string][]media.File
}

const mediaCacheTitles = 4

// mediaTitle returns the generated files of a media title.
func mediaTitle(title string) []media.File {
	mediaCache.Lock()
	defer mediaCache.Unlock()
	if f, ok := mediaCache.titles[title]; ok {
		return f
	}
	if mediaCache.titles == nil {
		mediaCache.titles = map[string][]media.File{}
	}
	if len(mediaCache.order) == mediaCacheTitles {
		delete(mediaCache.titles, mediaCache.order[0])
		mediaCache.order = mediaCache.order[1:]
	}
	f := media.Title(title)
	mediaCache.titles[title] = f
	mediaCache.order = append(mediaCache.order, title)
	return f
}

// mediaFile returns the bytes of path when it names a file of a media
// title, else nil.
func mediaFile(path string) []byte {
	title, name, ok := strings.Cut(path, "/")
	if !ok || !IsMediaTitle(title) {
		return nil
	}
	for _, f := range mediaTitle(title) {
		if f.Name == name {
			return f.Data
		}
	}
	return nil
}
