package dock

import (
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// found is one media file a scan saw in a camera's folder.
type found struct {
	Rel     string // slash-separated, relative to the folder
	Size    int64
	ModTime time.Time
}

// skippedDirs are system folders that removable media carry.
var skippedDirs = map[string]bool{"system volume information": true, "$recycle.bin": true, "lost.dir": true, "found.000": true}

// tempSuffixes mark files a recorder (or a copy) is still writing.
var tempSuffixes = []string{".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", "~"}

// skipName: hidden, temporary and system files are never media.
func skipName(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "~") || strings.HasPrefix(name, "$") {
		return true
	}
	low := strings.ToLower(name)
	for _, s := range tempSuffixes {
		if strings.HasSuffix(low, s) {
			return true
		}
	}
	return low == "thumbs.db" || low == "desktop.ini"
}

// scanDir lists the media files of a camera's folder. It never follows a
// symbolic link (so never leaves the folder), skips hidden, temporary and
// system files and folders, sidecars (read, not uploaded), the folder's
// `device` file and empty files. Unreadable parts are skipped: a folder
// that half reads still gives what it can.
func scanDir(dir string) ([]found, error) {
	var out []found
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // an unreadable entry: skip it
		}
		if p == dir {
			return nil
		}
		name := d.Name()
		if d.IsDir() {
			if skipName(name) || skippedDirs[strings.ToLower(name)] {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() { // symlinks, devices, sockets
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if skipName(name) || isSidecar(name) || rel == "device" {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() == 0 {
			return nil
		}
		out = append(out, found{Rel: rel, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	return out, err
}

// baseName is the file's name without folders.
func baseName(rel string) string { return path.Base(rel) }
