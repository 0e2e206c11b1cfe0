package dock

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// File states, as the per-camera report says them.
const (
	StatePending   = "pending"           // seen, not (yet) stored
	StateUploaded  = "uploaded"          // stored by this dock, receipt verified
	StateDuplicate = "skipped-duplicate" // the server already had it, receipt verified
	StateRefused   = "refused"           // the server refused the bytes (why in Reason)
	StateFailed    = "failed"            // this round gave up (why in Reason); tried again next round
)

// entry is what the dock knows of one file of a camera. It is kept on disk
// (state-dir/state/<camera>.json) after every step, so that an agent killed
// at any point resumes: the upload URL is saved before the first byte is
// sent, the offset after each chunk (the server's HEAD has the last word).
type entry struct {
	Path      string    `json:"path"` // relative to the camera's folder, slash-separated
	Size      int64     `json:"size"`
	ModTime   time.Time `json:"mtime"`
	SHA256    string    `json:"sha256,omitempty"`
	Device    string    `json:"device,omitempty"`
	UploadURL string    `json:"upload_url,omitempty"`
	Offset    int64     `json:"offset,omitempty"`
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	Attempts  int       `json:"refusals,omitempty"` // whole-file refusals so far
	Recording string    `json:"recording_id,omitempty"`
	Receipt   string    `json:"receipt,omitempty"` // path of receipt.json
	Verified  bool      `json:"receipt_verified,omitempty"`
	Released  bool      `json:"released,omitempty"`
	// ReleaseNoted: the server was told (POST released) or there was
	// nothing to tell (a duplicate has no upload of ours).
	ReleaseNoted bool      `json:"release_noted,omitempty"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// done: nothing is left to do for the file (unless --release still must
// delete it).
func (e *entry) done() bool {
	return e.Verified && (e.State == StateUploaded || e.State == StateDuplicate)
}

// cameraState is the on-disk state of one camera's folder.
type cameraState struct {
	path string // the state file

	mu    sync.Mutex
	Name  string            `json:"camera"`
	Dir   string            `json:"dir"`
	Files map[string]*entry `json:"files"`
}

func loadCameraState(path, name, dir string) (*cameraState, error) {
	cs := &cameraState{path: path, Name: name, Dir: dir, Files: map[string]*entry{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cs, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, cs); err != nil {
		return nil, fmt.Errorf("state %s: %v (move it away to start over; the server's receipts stop re-uploads)", path, err)
	}
	if cs.Files == nil {
		cs.Files = map[string]*entry{}
	}
	cs.Name, cs.Dir = name, dir
	return cs, nil
}

// get returns a copy of a file's entry (ok false if unknown).
func (cs *cameraState) get(rel string) (entry, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	e, ok := cs.Files[rel]
	if !ok {
		return entry{}, false
	}
	return *e, true
}

// put stores a file's entry and writes the state to disk.
func (cs *cameraState) put(e entry) error {
	e.UpdatedAt = time.Now().UTC()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.Files[e.Path] = &e
	b, err := json.MarshalIndent(cs, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(cs.path, append(b, '\n'))
}

// entries returns copies of every entry, by path.
func (cs *cameraState) entries() []entry {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]entry, 0, len(cs.Files))
	for _, e := range cs.Files {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// writeFileAtomic writes b to path so that a crash leaves either the old
// file or the new one: a temporary file, fsync, rename, fsync of the
// directory.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
