package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/internal/testsvc"
)

// A backup taken with `bodycam backup` while the server records, restored
// into a new data directory over the same objects, gives back a server
// where every recording verifies, the custody ledger verifies, the admin
// token and an auditor's API token made before the backup still work, the
// recorder's secret still works, and the device's chain goes on. Against
// the directory store (the new data directory points at the old objects)
// and against MinIO (the same bucket).
func TestBackupRestore(t *testing.T) {
	t.Run("directory store", func(t *testing.T) { testBackupRestore(t, nil) })
	t.Run("minio", func(t *testing.T) {
		m := sharedMinIO(t)
		testBackupRestore(t, []string{"--s3-endpoint", m.Endpoint, "--s3-access-key", m.AccessKey, "--s3-secret-key", m.SecretKey, "--s3-bucket", "restore"})
	})
}

// recordings lists a device's recordings, newest first.
func (s *server) recordings(token, device string) []storedRecording {
	s.t.Helper()
	code, body := s.call("GET", "/api/v1/recordings?device="+device, token, "")
	if code != 200 {
		s.t.Fatalf("recordings of %s: %d %s", device, code, body)
	}
	var list struct {
		Items []storedRecording `json:"items"`
	}
	json.Unmarshal([]byte(body), &list)
	return list.Items
}

// waitAllStored waits until device has n recordings, each with its manifest.
func (s *server) waitAllStored(token, device string, n int) []storedRecording {
	s.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		recs := s.recordings(token, device)
		done := len(recs) == n
		for _, r := range recs {
			done = done && r.ManifestKey != ""
		}
		if done {
			return recs
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not %d stored recordings: %+v\n%s", device, n, recs, s.log)
		}
	}
}

func (s *server) isLive(device string) bool {
	_, body := s.call("GET", "/api/v1/live", s.token(), "")
	return strings.Contains(body, `"device_id": "`+device+`"`)
}

func testBackupRestore(t *testing.T, store []string) {
	h264 := []string{"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac"}
	dataDir := t.TempDir()
	args := append([]string{"--segment-duration", "1s"}, store...)
	s := start(t, dataDir, args...)
	admin := s.token()
	pw := s.register(admin, "cam-r")
	aud := s.roleToken(admin, "aud-1", "auditor")

	// Recording A is stored before the backup.
	if err := s.publishFFmpeg("cam-r", pw, 3, h264...).Wait(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	s.waitAllStored(aud, "cam-r", 1)

	// Recording B is being recorded and stored while the backup is taken.
	ff := s.publishFFmpeg("cam-r", pw, 8, h264...)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if recs := s.recordings(aud, "cam-r"); len(recs) == 2 && recs[0].SegmentCount >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording B stores no segments\n%s", s.log)
		}
	}
	backupDir := filepath.Join(t.TempDir(), "backup")
	out, err := exec.Command(binary, append(append([]string{"backup", "--data-dir", dataDir}, store...), backupDir)...).CombinedOutput()
	if err != nil {
		t.Fatalf("bodycam backup: %v\n%s", err, out)
	}
	if !s.isLive("cam-r") {
		t.Fatal("recording B ended before the backup did: the backup was not taken while it recorded")
	}
	if !strings.Contains(string(out), "1 recording(s) were being recorded at the snapshot") {
		t.Fatalf("the backup does not say a recording was in progress:\n%s", out)
	}
	if err := ff.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	before := s.waitAllStored(aud, "cam-r", 2)
	_, ledger := s.call("POST", "/api/v1/custody/verify", aud, "")
	s.stop()

	// The backup: 0700, files 0600, a MANIFEST sha256sum checks.
	checkBackupDir(t, backupDir, []string{"catalog.db", "keys/signing.key", "keys/credential.key", "admin-token", "RESTORE.txt", "MANIFEST"})
	sums := exec.Command("sha256sum", "-c", "--strict", "MANIFEST")
	sums.Dir = backupDir
	if check, err := sums.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c MANIFEST: %v\n%s", err, check)
	}
	if !strings.Contains(string(out), "sha256sum -c MANIFEST") {
		t.Fatalf("backup output:\n%s", out)
	}

	// Restore: the backup's files into a new data directory (it mirrors the
	// layout), over the same objects; what the old data directory held
	// besides the objects is gone, so nothing can come from there.
	restored := t.TempDir()
	copyTree(t, backupDir, restored, "MANIFEST", "RESTORE.txt")
	if store == nil {
		// The directory backend's objects are the object store: the new
		// data directory points at them, as a disk of their own mounted
		// there would be, rather than a copy of them (which would also have
		// to keep their read-only modes and metadata).
		if err := os.Symlink(filepath.Join(dataDir, "objects"), filepath.Join(restored, "objects")); err != nil {
			t.Fatal(err)
		}
	}
	for _, gone := range []string{"catalog.db", "catalog.db-wal", "catalog.db-shm", "keys", "admin-token", "spool"} {
		if err := os.RemoveAll(filepath.Join(dataDir, gone)); err != nil {
			t.Fatal(err)
		}
	}
	s2 := start(t, restored, args...)
	if s2.token() != admin {
		t.Fatal("the admin token is not the one backed up")
	}
	// The auditor's API token, made before the backup, works.
	after := s2.recordings(aud, "cam-r")
	if len(after) != 2 || after[1].ID != before[1].ID || after[1].State != "complete" || after[0].ID != before[0].ID {
		t.Fatalf("restored recordings %+v; before the restore %+v", after, before)
	}
	// A was complete at the backup; B was being recorded: the catalog has
	// it as it was at that moment, still "live", with the segments stored
	// by then (the rest of it is in the object store only).
	if after[0].State != "live" || after[0].SegmentCount < 2 || after[0].SegmentCount >= before[0].SegmentCount {
		t.Fatalf("recording B after the restore: %+v (at the end: %+v)", after[0], before[0])
	}
	for _, r := range after {
		_, v := s2.call("POST", "/api/v1/recordings/"+r.ID+"/verify", aud, "")
		if !strings.Contains(v, `"ok": true`) {
			t.Fatalf("verify %s after the restore: %s", r.ID, v)
		}
	}
	_, v := s2.call("POST", "/api/v1/custody/verify", aud, "")
	if !strings.Contains(v, `"ok": true`) || !strings.Contains(ledger, `"ok": true`) {
		t.Fatalf("custody ledger after the restore: %s (before: %s)", v, ledger)
	}
	// The recorder's secret comes from the restored credential key, and its
	// chain goes on from the restored catalog.
	if err := s2.publishFFmpeg("cam-r", pw, 3, h264...).Wait(); err != nil {
		t.Fatalf("ffmpeg after the restore: %v", err)
	}
	var next storedRecording
	for deadline := time.Now().Add(30 * time.Second); next.ManifestKey == ""; time.Sleep(200 * time.Millisecond) {
		if recs := s2.recordings(aud, "cam-r"); len(recs) == 3 {
			next = recs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recording stored after the restore\n%s", s2.log)
		}
	}
	if _, v := s2.call("POST", "/api/v1/recordings/"+next.ID+"/verify", aud, ""); !strings.Contains(v, `"ok": true`) || !strings.Contains(v, `"manifest": "ok"`) {
		t.Fatalf("verify of a recording made after the restore: %s", v)
	}
	s2.stop()
}

// checkBackupDir checks a backup's modes and that it holds the named files.
func checkBackupDir(t *testing.T, dir string, want []string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		switch {
		case d.IsDir() && st.Mode().Perm() != 0o700:
			t.Errorf("%s: mode %v, want 0700", rel, st.Mode().Perm())
		case !d.IsDir() && st.Mode().Perm() != 0o600:
			t.Errorf("%s: mode %v, want 0600", rel, st.Mode().Perm())
		}
		seen[filepath.ToSlash(rel)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range want {
		if !seen[f] {
			t.Errorf("the backup lacks %s", f)
		}
	}
	pubs, _ := filepath.Glob(filepath.Join(dir, "keys", "public", "*.pem"))
	if len(pubs) == 0 {
		t.Error("the backup lacks the public keys")
	}
	if t.Failed() {
		t.FailNow()
	}
}

// copyTree copies the files under from into to, keeping their modes, but
// for the names skipped.
func copyTree(t *testing.T, from, to string, skip ...string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		for _, s := range skip {
			if rel == s {
				return nil
			}
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), st.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, st.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// With PostgreSQL the backup copies the keys and the token and prints the
// pg_dump command for the catalog, naming the URL's file rather than the
// URL: the command, run as printed, dumps the catalog. A backup directory
// that is not empty, inside the data directory, or missing is refused
// with exit 2.
func TestBackupPostgres(t *testing.T) {
	db := testsvc.Postgres(t)
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "database-url")
	if err := os.WriteFile(urlFile, []byte(db+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	s := start(t, dataDir, "--database-url-file", urlFile)
	s.register(s.token(), "cam-pg")

	backupDir := filepath.Join(t.TempDir(), "backup")
	cmd := exec.Command(binary, "backup", "--data-dir", dataDir, "--database-url-file", urlFile, backupDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bodycam backup: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	checkBackupDir(t, backupDir, []string{"keys/signing.key", "keys/credential.key", "admin-token", "RESTORE.txt", "MANIFEST"})
	if _, err := os.Stat(filepath.Join(backupDir, "catalog.db")); !os.IsNotExist(err) {
		t.Fatalf("a catalog.db in a PostgreSQL backup: %v", err)
	}
	restore, _ := os.ReadFile(filepath.Join(backupDir, "RESTORE.txt"))
	want := `pg_dump --format=custom --file=` + filepath.Join(backupDir, "catalog.pgdump") + ` --dbname="$(cat ` + urlFile + `)"`
	if !strings.Contains(stdout.String(), want) || !strings.Contains(string(restore), want) || !strings.Contains(string(restore), "pg_restore ") {
		t.Fatalf("the pg_dump command is not %s:\n%s\n%s", want, stdout.String(), restore)
	}
	if strings.Contains(stdout.String(), db) || strings.Contains(string(restore), db) {
		t.Fatal("the database URL is printed")
	}
	s.stop()
	for _, l := range strings.Split(stdout.String(), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "pg_dump ") {
			if out, err := exec.Command("sh", "-c", l).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", l, err, out)
			}
		}
	}
	list, err := exec.Command("pg_restore", "--list", filepath.Join(backupDir, "catalog.pgdump")).CombinedOutput()
	if err != nil || !strings.Contains(string(list), "TABLE public custody_events") || !strings.Contains(string(list), "TABLE DATA public devices") {
		t.Fatalf("pg_restore --list of the dump: %v\n%s", err, list)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"not empty", []string{backupDir}, "is not empty"},
		{"inside the data directory", []string{filepath.Join(dataDir, "backup")}, "inside the data directory"},
		{"no directory", nil, "want one backup directory"},
	} {
		code, stderr := runOnce(t, append([]string{"backup", "--data-dir", dataDir, "--database-url-file", urlFile}, tc.args...)...)
		if lines := strings.Split(strings.TrimSpace(stderr), "\n"); code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2 and one line saying %q", tc.name, code, stderr, tc.want)
		}
	}
}
