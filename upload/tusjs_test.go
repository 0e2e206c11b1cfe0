package upload_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
)

// A tus client that is not ours: tus-js-client 4.3.1 under Node
// (test/browser/tus-upload.mjs) uploads an MP4 (H.264+AAC) in 16 KiB
// PATCHes to the real API and upload server; the finishing PATCH's answer
// is the receipt, which checks with the server's key, and the file is
// stored. Needs Node 20+ and `npm ci --prefix test/browser`.
func TestTusJSClient(t *testing.T) {
	dir, _ := filepath.Abs(filepath.Join("..", "test", "browser"))
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("this test needs Node.js 20 or later (apt-get install nodejs npm), then: npm ci --prefix test/browser")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "tus-js-client", "package.json")); err != nil {
		t.Fatalf("this test needs its npm packages: npm ci --prefix test/browser (%v)", err)
	}
	f := newFixture(t)
	data := clip(t, "cam-a_20260101120000.mp4", append(append([]string{}, video...), h264...)...)
	file := filepath.Join(t.TempDir(), "cam-a_20260101120000.mp4")
	os.WriteFile(file, data, 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "tus-upload.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BODYCAM_URL="+f.url, "BODYCAM_TOKEN=tok-dk-a", "BODYCAM_FILE="+file,
		"BODYCAM_DEVICE=cam-a", "BODYCAM_SHA256="+sha(data))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tus-js-client: %v\n%s\n%s", err, out, stderr.String())
	}
	var res struct {
		Status   int    `json:"status"`
		URL      string `json:"url"`
		Progress int    `json:"progress"`
		Body     string `json:"body"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil {
		t.Fatalf("tus-js-client said %q: %v", out, err)
	}
	if res.Status != 200 || res.Progress != len(data) || !strings.Contains(res.URL, "/api/v1/uploads/") {
		t.Fatalf("tus-js-client: %+v", res)
	}
	r := f.checkReceipt(t, []byte(res.Body), data, filepath.Base(file))
	u, err := f.cat.Upload(context.Background(), filepath.Base(res.URL))
	if err != nil || u.State != catalog.UploadStored || u.RecordingID != r.RecordingID {
		t.Fatalf("upload after tus-js-client: %+v %v", u, err)
	}
	if len(data) <= 2*(16<<10) {
		t.Fatalf("the clip (%d bytes) fits one PATCH: the test would not resume across chunks", len(data))
	}
}
