package catalogtest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// fileHash is the SHA-256 (hex) of a made-up file's bytes.
func fileHash(name string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(name))) }

func upload(id, dock, dev, file string) evidence.Upload {
	return evidence.Upload{ID: id, DeviceID: dev, OfficerID: "officer-7", Dock: dock, FileName: file + ".MP4",
		Size: 1 << 20, SHA256: fileHash(file), Important: true,
		StartedAt: t0.Add(-2 * time.Hour), EndedAt: t0.Add(-2*time.Hour + 5*time.Minute), TimeSource: evidence.TimeGiven,
		GPS:        []evidence.GPSPoint{{At: t0.Add(-2 * time.Hour), Lat: 48.8566, Lon: 2.3522}, {At: t0.Add(-119 * time.Minute), Lat: 48.857, Lon: 2.353}},
		RemoteAddr: "10.0.0.9:41000"}
}

// uploaded is the recording and original segment an upload becomes.
func uploaded(u evidence.Upload, rec string) (evidence.Recording, evidence.Segment) {
	r := evidence.Recording{ID: rec, DeviceID: u.DeviceID, OfficerID: u.OfficerID, Kind: evidence.KindUpload,
		State: evidence.StateComplete, StartedAt: u.StartedAt, EndedAt: u.EndedAt, EndReason: "uploaded",
		Codecs: []string{"H264 1920x1080"}, RemoteAddr: u.RemoteAddr}
	s := evidence.Segment{RecordingID: rec, DeviceID: u.DeviceID, Seq: 1, Kind: evidence.KindOriginal,
		Key: evidence.OriginalKey(u.DeviceID, rec, u.FileName), Size: u.Size, SHA256: u.SHA256,
		StartedAt: u.StartedAt, Duration: u.EndedAt.Sub(u.StartedAt), Keyframe: true}
	return r, s
}

func mustUpload(t *testing.T, c *catalog.Catalog, u evidence.Upload) {
	t.Helper()
	if err := c.CreateUpload(context.Background(), u); err != nil {
		t.Fatal(err)
	}
}

// Recordings keep their kind; "" is stream; the filter selects by kind.
func testRecordingKinds(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	plain := recording("s1", "cam-1", t0)
	plain.Kind = ""
	if err := c.CreateRecording(ctx, plain); err != nil {
		t.Fatal(err)
	}
	up := recording("u1", "cam-1", t0.Add(time.Hour))
	up.Kind, up.State, up.EndedAt = evidence.KindUpload, evidence.StateComplete, t0.Add(time.Hour+time.Minute)
	if err := c.CreateRecording(ctx, up); err != nil {
		t.Fatal(err)
	}
	bad := recording("x", "cam-1", t0)
	bad.Kind = "tape"
	if err := c.CreateRecording(ctx, bad); err == nil {
		t.Fatal("kind tape accepted")
	}
	if r, err := c.Recording(ctx, "s1"); err != nil || r.Kind != evidence.KindStream {
		t.Fatalf("recording of kind \"\": %q, %v; want stream", r.Kind, err)
	}
	if r, err := c.Recording(ctx, "u1"); err != nil || !reflect.DeepEqual(r, up) {
		t.Fatalf("upload recording = %+v, %v; want %+v", r, err, up)
	}
	for kind, want := range map[evidence.RecordingKind]string{"": "u1 s1", evidence.KindStream: "s1", evidence.KindUpload: "u1"} {
		rs, err := c.Recordings(ctx, catalog.RecordingFilter{DeviceID: "cam-1", Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		rs2, err := c.Recordings(ctx, catalog.RecordingFilter{Kind: kind, From: t0.Add(-time.Hour), To: t0.Add(2 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if got, got2 := recordingIDs(rs), recordingIDs(rs2); got != want || got2 != want {
			t.Errorf("Recordings of kind %q: %q and in a window %q, want %q", kind, got, got2, want)
		}
	}
	// AppendSegment takes an original, counted, and does not fence it: the
	// file was recorded in the past. A newer grant of the device (a stream
	// recording of a later fence) would refuse a media segment this late.
	grant := t0.Add(-3 * time.Hour)
	fenced := recording("s2", "cam-1", grant)
	fenced.Fence = grant.UnixMicro()
	if err := c.CreateRecording(ctx, fenced); err != nil {
		t.Fatal(err)
	}
	orig := evidence.Segment{RecordingID: "u1", Seq: 1, Kind: evidence.KindOriginal, Key: "cam-1/u1/original.mp4", Size: 9,
		SHA256: fileHash("u1"), StartedAt: t0.Add(time.Hour), Duration: time.Minute}
	got, err := c.AppendSegment(ctx, orig)
	if err != nil {
		t.Fatalf("original segment: %v", err)
	}
	if got.Kind != evidence.KindOriginal || got.DeviceID != "cam-1" || got.ChainHash != evidence.ChainHash(got.Link()) {
		t.Fatalf("original segment recorded as %+v", got)
	}
	if r, _ := c.Recording(ctx, "u1"); r.SegmentCount != 1 {
		t.Fatalf("segment_count %d after an original, want 1", r.SegmentCount)
	}
	media := segment("s1", 1)
	if _, err := c.AppendSegment(ctx, media); !errors.Is(err, catalog.ErrStaleFence) {
		t.Fatalf("media segment after a newer grant: %v, want ErrStaleFence (the original was not fenced)", err)
	}
}

func recordingIDs(rs []evidence.Recording) string {
	var out string
	for i, r := range rs {
		if i > 0 {
			out += " "
		}
		out += r.ID
	}
	return out
}

// An upload is created receiving with all it was given, moves between
// the states that are not stored, and a dock account can exist.
func testUploads(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	if err := c.CreateUser(ctx, user("dock-1", evidence.RoleDock)); err != nil {
		t.Fatalf("a dock account: %v", err)
	}
	if u, err := c.User(ctx, "dock-1"); err != nil || u.Role != evidence.RoleDock {
		t.Fatalf("dock account read as %+v, %v", u, err)
	}
	u := upload("up-1", "dock-1", "cam-1", "FILE0001")
	if err := c.CreateUpload(ctx, u); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("upload for an unknown device: %v, want ErrNotFound", err)
	}
	mustDevice(t, c, "cam-1")
	before := time.Now().Add(-time.Second)
	mustUpload(t, c, u)
	if err := c.CreateUpload(ctx, u); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("same upload id twice: %v, want ErrExists", err)
	}
	for _, bad := range []func(*evidence.Upload){
		func(u *evidence.Upload) { u.SHA256 = "abc" },
		func(u *evidence.Upload) { u.SHA256 = strings.ToUpper(u.SHA256) },
		func(u *evidence.Upload) { u.FileName = "../x.mp4" },
		func(u *evidence.Upload) { u.Size = -1 },
		func(u *evidence.Upload) { u.Dock = "" },
	} {
		b := upload("up-bad", "dock-1", "cam-1", "FILE0009")
		bad(&b)
		if err := c.CreateUpload(ctx, b); err == nil {
			t.Errorf("upload %+v accepted", b)
		}
	}
	got, err := c.Upload(ctx, "up-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != catalog.UploadReceiving || got.Reason != "" || got.ReceivedSHA256 != "" ||
		got.CreatedAt.Before(before) || !got.UpdatedAt.Equal(got.CreatedAt) || !reflect.DeepEqual(got.Upload, u) {
		t.Fatalf("Upload = %+v, want %+v receiving", got, u)
	}
	if _, err := c.Upload(ctx, "nope"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown upload: %v", err)
	}
	received := fileHash("flipped")
	if err := c.SetUploadState(ctx, "up-1", catalog.UploadRefused, "sha256 mismatch", received); err != nil {
		t.Fatal(err)
	}
	got, _ = c.Upload(ctx, "up-1")
	if got.State != catalog.UploadRefused || got.Reason != "sha256 mismatch" || got.ReceivedSHA256 != received || got.UpdatedAt.Before(got.CreatedAt) {
		t.Fatalf("after refusal: %+v", got)
	}
	// Resumed: the reason goes, the received hash stays until another.
	if err := c.SetUploadState(ctx, "up-1", catalog.UploadReceiving, "", ""); err != nil {
		t.Fatal(err)
	}
	if got, _ = c.Upload(ctx, "up-1"); got.State != catalog.UploadReceiving || got.Reason != "" || got.ReceivedSHA256 != received {
		t.Fatalf("after resume: %+v", got)
	}
	if err := c.SetUploadState(ctx, "up-1", catalog.UploadStored, "", ""); err == nil || errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("set stored: %v, want a plain refusal (StoreUpload stores)", err)
	}
	if err := c.SetUploadState(ctx, "up-1", "lost", "", ""); err == nil {
		t.Fatal("state lost accepted")
	}
	if err := c.SetUploadState(ctx, "nope", catalog.UploadFinishing, "", ""); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown upload: %v, want ErrNotFound", err)
	}
	if _, err := c.StoredUpload(ctx, "cam-1", u.SHA256); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("StoredUpload before it is stored: %v, want ErrNotFound", err)
	}
	// The times the server found (here: the file's own header).
	fileStart := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	if err := c.SetUploadTimes(ctx, "up-1", fileStart, fileStart.Add(90*time.Second), evidence.TimeFromFile); err != nil {
		t.Fatal(err)
	}
	if got, _ = c.Upload(ctx, "up-1"); !got.StartedAt.Equal(fileStart) || got.EndedAt.Sub(got.StartedAt) != 90*time.Second || got.TimeSource != evidence.TimeFromFile {
		t.Fatalf("after SetUploadTimes: %+v", got)
	}
	if err := c.SetUploadTimes(ctx, "up-1", fileStart, fileStart.Add(-time.Second), evidence.TimeFromFile); err == nil {
		t.Fatal("an end before the start accepted")
	}
	if err := c.SetUploadTimes(ctx, "up-1", fileStart, time.Time{}, "guessed"); err == nil {
		t.Fatal("time source guessed accepted")
	}
	if err := c.SetUploadTimes(ctx, "nope", fileStart, time.Time{}, evidence.TimeGiven); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown upload: %v, want ErrNotFound", err)
	}
	if err := c.SetUploadTimes(ctx, "up-1", u.StartedAt, u.EndedAt, u.TimeSource); err != nil {
		t.Fatal(err)
	}
	// Stored, it stays stored.
	rec, seg := uploaded(u, "rec-1")
	if _, _, err := c.StoreUpload(ctx, rec, seg, "up-1"); err != nil {
		t.Fatal(err)
	}
	for _, st := range []catalog.UploadState{catalog.UploadReceiving, catalog.UploadFinishing, catalog.UploadRefused, catalog.UploadAbandoned} {
		if err := c.SetUploadState(ctx, "up-1", st, "x", ""); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("stored upload set %s: %v, want ErrConflict", st, err)
		}
	}
	if err := c.SetUploadTimes(ctx, "up-1", fileStart, time.Time{}, evidence.TimeGiven); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("stored upload's times changed: %v, want ErrConflict", err)
	}
	got, _ = c.Upload(ctx, "up-1")
	if got.State != catalog.UploadStored || got.Reason != "" || got.RecordingID != "rec-1" || got.ReceivedSHA256 != u.SHA256 {
		t.Fatalf("stored upload: %+v", got)
	}
	if s, err := c.StoredUpload(ctx, "cam-1", u.SHA256); err != nil || s.ID != "up-1" || s.RecordingID != "rec-1" {
		t.Fatalf("StoredUpload = %+v, %v", s, err)
	}
	// An abandoned upload is not stored.
	ab := upload("up-2", "dock-1", "cam-1", "FILE0002")
	mustUpload(t, c, ab)
	if err := c.SetUploadState(ctx, "up-2", catalog.UploadAbandoned, "no byte for 72h", ""); err != nil {
		t.Fatal(err)
	}
	rec, seg = uploaded(ab, "rec-2")
	if _, _, err := c.StoreUpload(ctx, rec, seg, "up-2"); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("storing an abandoned upload: %v, want ErrConflict", err)
	}
	if _, _, err := c.StoreUpload(ctx, rec, seg, "nope"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("storing an unknown upload: %v, want ErrNotFound", err)
	}
	// The segment must be the upload's file.
	other := upload("up-3", "dock-1", "cam-1", "FILE0003")
	mustUpload(t, c, other)
	rec, seg = uploaded(other, "rec-3")
	seg.SHA256 = fileHash("something else")
	if _, _, err := c.StoreUpload(ctx, rec, seg, "up-3"); err == nil {
		t.Fatal("a segment of other bytes than the upload's stored")
	}
	rec, seg = uploaded(other, "rec-3")
	seg.Seq = 2
	if _, _, err := c.StoreUpload(ctx, rec, seg, "up-3"); err == nil {
		t.Fatal("an original of seq 2 stored")
	}
	if _, err := c.Recording(ctx, "rec-3"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("refused stores wrote a recording: %v", err)
	}
}

// StoreUpload makes the upload a recording whose one segment is the next
// link of the device's chain, in one transaction with its events.
func testStoreUpload(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	// The device streamed first: the upload's link follows the stream's.
	if err := c.CreateRecording(ctx, recording("live-1", "cam-1", t0)); err != nil {
		t.Fatal(err)
	}
	for seq := int64(0); seq < 3; seq++ {
		if _, err := c.AppendSegment(ctx, segment("live-1", seq)); err != nil {
			t.Fatal(err)
		}
	}
	headSeq, head, err := c.ChainHead(ctx, "cam-1")
	if err != nil || headSeq != 3 {
		t.Fatalf("chain head %d, %v", headSeq, err)
	}
	after := sequenced(t, c, 0)
	u := upload("up-1", "dock-1", "cam-1", "FILE0001")
	mustUpload(t, c, u)
	if err := c.SetUploadState(ctx, "up-1", catalog.UploadFinishing, "", ""); err != nil {
		t.Fatal(err)
	}
	rec, seg := uploaded(u, "rec-1")
	rec.State, rec.Kind, seg.Kind = "", "", "" // the defaults: complete, upload, original
	gotRec, gotSeg, err := c.StoreUpload(ctx, rec, seg, "up-1")
	if err != nil {
		t.Fatal(err)
	}
	wantRec, wantSeg := uploaded(u, "rec-1")
	wantRec.SegmentCount = 1
	wantSeg.ChainSeq, wantSeg.PrevChainHash = 4, head
	wantSeg.ChainHash = evidence.ChainHash(wantSeg.Link())
	if !reflect.DeepEqual(gotRec, wantRec) || gotSeg != wantSeg {
		t.Fatalf("StoreUpload = %+v, %+v\nwant %+v, %+v", gotRec, gotSeg, wantRec, wantSeg)
	}
	if r, err := c.Recording(ctx, "rec-1"); err != nil || !reflect.DeepEqual(r, wantRec) {
		t.Fatalf("Recording = %+v, %v; want %+v", r, err, wantRec)
	}
	if segs, err := c.Segments(ctx, "rec-1"); err != nil || len(segs) != 1 || segs[0] != wantSeg {
		t.Fatalf("Segments = %+v, %v", segs, err)
	}
	// The chain: recomputable from the stored link, the head moved to it.
	links, err := c.ChainLinks(ctx, "cam-1", 1, 0)
	if err != nil || len(links) != 4 {
		t.Fatalf("chain links %d, %v", len(links), err)
	}
	prev := evidence.GenesisHash
	for _, l := range links {
		if l.PrevChainHash != prev || evidence.ChainHash(l.Link()) != l.ChainHash {
			t.Fatalf("chain link %d does not recompute: %+v", l.ChainSeq, l)
		}
		prev = l.ChainHash
	}
	if n, h, _ := c.ChainHead(ctx, "cam-1"); n != 4 || h != wantSeg.ChainHash {
		t.Fatalf("chain head %d %s, want 4 %s", n, h, wantSeg.ChainHash)
	}
	if got, _ := c.Upload(ctx, "up-1"); got.State != catalog.UploadStored || got.RecordingID != "rec-1" {
		t.Fatalf("upload after store: %+v", got)
	}
	// The events of a recording's start and segment; not live, so no
	// device.online.
	evs := sequenced(t, c, int64(len(after)))
	if got, want := kinds(evs), "recording.started segment.stored"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	if d := data(t, evs[0]); d["recording_id"] != "rec-1" || d["kind"] != "upload" || d["state"] != "complete" ||
		d["ended_at"] == nil || !evs[0].OccurredAt.Equal(u.StartedAt) || evs[0].DeviceID != "cam-1" {
		t.Fatalf("recording.started: %s at %v", evs[0].Data, evs[0].OccurredAt)
	}
	if d := data(t, evs[1]); d["kind"] != "original" || d["seq"] != 1.0 || d["chain_seq"] != 4.0 || d["sha256"] != u.SHA256 ||
		d["object_key"] != "cam-1/rec-1/original.mp4" {
		t.Fatalf("segment.stored: %s", evs[1].Data)
	}
	if d := data(t, after[0]); d["kind"] != "stream" {
		t.Fatalf("a stream's recording.started: %s", after[0].Data)
	}
	// Its manifest closes it as any recording's does.
	if err := c.SetManifest(ctx, "rec-1", "cam-1/rec-1/manifest.json"); err != nil {
		t.Fatal(err)
	}
	evs = sequenced(t, c, int64(len(after)+2))
	if len(evs) != 1 || evs[0].Kind != "recording.closed" || data(t, evs[0])["segments"] != 1.0 || data(t, evs[0])["kind"] != "upload" {
		t.Fatalf("after the manifest: %s", kinds(evs))
	}
}

// The same file of a device stored again is the same recording: nothing
// new is written. Another device's copy of the bytes is its own.
func testStoreUploadDuplicate(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	mustDevice(t, c, "cam-2")
	u1 := upload("up-1", "dock-1", "cam-1", "FILE0001")
	mustUpload(t, c, u1)
	r0, s0 := uploaded(u1, "rec-1")
	rec1, seg1, err := c.StoreUpload(ctx, r0, s0, "up-1")
	if err != nil {
		t.Fatal(err)
	}
	headSeq, head, _ := c.ChainHead(ctx, "cam-1")
	events := len(sequenced(t, c, 0))

	u2 := upload("up-2", "dock-2", "cam-1", "FILE0001") // the same bytes, from another dock
	u2.FileName = "copy.mp4"
	mustUpload(t, c, u2)
	r2, s2 := uploaded(u2, "rec-2")
	gotRec, gotSeg, err := c.StoreUpload(ctx, r2, s2, "up-2")
	if !errors.Is(err, catalog.ErrExists) || !reflect.DeepEqual(gotRec, rec1) || gotSeg != seg1 {
		t.Fatalf("duplicate: %+v, %+v, %v; want ErrExists with %+v, %+v", gotRec, gotSeg, err, rec1, seg1)
	}
	// This upload again (a retry after a crash) answers the same.
	r1, s1 := uploaded(u1, "rec-1-retry")
	if gotRec, gotSeg, err := c.StoreUpload(ctx, r1, s1, "up-1"); !errors.Is(err, catalog.ErrExists) || gotRec.ID != "rec-1" || gotSeg != seg1 {
		t.Fatalf("store retried: %+v, %+v, %v", gotRec, gotSeg, err)
	}
	// Nothing written.
	for _, id := range []string{"rec-2", "rec-1-retry"} {
		if _, err := c.Recording(ctx, id); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("duplicate wrote recording %s: %v", id, err)
		}
	}
	if n, h, _ := c.ChainHead(ctx, "cam-1"); n != headSeq || h != head {
		t.Fatalf("duplicate moved the chain head to %d %s", n, h)
	}
	if evs := sequenced(t, c, 0); len(evs) != events {
		t.Fatalf("duplicate wrote events: %s", kinds(evs[events:]))
	}
	if got, _ := c.Upload(ctx, "up-2"); got.State != catalog.UploadReceiving || got.RecordingID != "" {
		t.Fatalf("duplicate changed its upload: %+v", got)
	}
	if rs, _ := c.Recordings(ctx, catalog.RecordingFilter{Kind: evidence.KindUpload}); len(rs) != 1 {
		t.Fatalf("%d upload recordings, want 1", len(rs))
	}
	// The same bytes from another device are that device's recording.
	u3 := upload("up-3", "dock-1", "cam-2", "FILE0001")
	mustUpload(t, c, u3)
	r3, s3 := uploaded(u3, "rec-3")
	gotRec, gotSeg, err = c.StoreUpload(ctx, r3, s3, "up-3")
	if err != nil || gotRec.ID != "rec-3" || gotSeg.ChainSeq != 1 || gotSeg.PrevChainHash != evidence.GenesisHash {
		t.Fatalf("same file of another device: %+v, %+v, %v", gotRec, gotSeg, err)
	}
	if s, err := c.StoredUpload(ctx, "cam-2", u3.SHA256); err != nil || s.ID != "up-3" {
		t.Fatalf("StoredUpload of cam-2: %+v, %v", s, err)
	}
	// An upload is stored as its own device's.
	u4 := upload("up-4", "dock-1", "cam-1", "FILE0004")
	mustUpload(t, c, u4)
	r4, s4 := uploaded(u4, "rec-4")
	r4.DeviceID, s4.DeviceID = "cam-2", "cam-2"
	if _, _, err := c.StoreUpload(ctx, r4, s4, "up-4"); err == nil {
		t.Fatal("cam-1's upload stored as cam-2's")
	}
}

// Two stores of the same file at once (two docks, or a retry racing the
// first) make one recording; the other gets it with ErrExists.
func testStoreUploadConcurrent(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	const n = 4
	for i := 0; i < n; i++ {
		mustUpload(t, c, upload(fmt.Sprintf("up-%d", i), "dock-1", "cam-1", "FILE0001"))
	}
	type result struct {
		rec evidence.Recording
		seg evidence.Segment
		err error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := upload(fmt.Sprintf("up-%d", i), "dock-1", "cam-1", "FILE0001")
			r, s := uploaded(u, fmt.Sprintf("rec-%d", i))
			<-start
			results[i].rec, results[i].seg, results[i].err = c.StoreUpload(ctx, r, s, u.ID)
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, r := range results {
		switch {
		case r.err == nil && winner < 0:
			winner = i
		case r.err == nil:
			t.Fatalf("two stores of one file succeeded: %d and %d", winner, i)
		case !errors.Is(r.err, catalog.ErrExists):
			t.Fatalf("store %d: %v", i, r.err)
		}
	}
	if winner < 0 {
		t.Fatal("no store succeeded")
	}
	for i, r := range results {
		if r.rec.ID != results[winner].rec.ID || r.seg != results[winner].seg {
			t.Fatalf("store %d answered %s/%+v, the winner %s/%+v", i, r.rec.ID, r.seg, results[winner].rec.ID, results[winner].seg)
		}
	}
	rs, err := c.Recordings(ctx, catalog.RecordingFilter{DeviceID: "cam-1"})
	if err != nil || len(rs) != 1 {
		t.Fatalf("%d recordings, %v; want 1", len(rs), err)
	}
	if seq, _, _ := c.ChainHead(ctx, "cam-1"); seq != 1 {
		t.Fatalf("chain head %d, want 1", seq)
	}
	stored, err := c.Uploads(ctx, catalog.UploadFilter{State: catalog.UploadStored})
	if err != nil || len(stored) != 1 || stored[0].ID != fmt.Sprintf("up-%d", winner) {
		t.Fatalf("stored uploads %+v, %v", stored, err)
	}
}

// Uploads lists newest first, by dock, device, state and the unit of the
// device's officer.
func testUploadFilters(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	for _, u := range []evidence.User{user("officer-7", evidence.RoleOfficer), user("o-9", evidence.RoleOfficer)} {
		if u.ID == "o-9" {
			u.Unit = "unit-9"
		}
		if err := c.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	mustDevice(t, c, "cam-1") // officer-7, unit-3
	d := device("cam-2")
	d.OfficerID = "o-9"
	if err := c.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	d = device("cam-3")
	d.OfficerID = "" // nobody's
	if err := c.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	// Created in id order: created_us orders them, ties fall back to the id.
	for _, u := range []evidence.Upload{
		upload("up-1", "dock-a", "cam-1", "F1"), upload("up-2", "dock-b", "cam-2", "F2"),
		upload("up-3", "dock-a", "cam-2", "F3"), upload("up-4", "dock-b", "cam-1", "F4"),
		upload("up-5", "dock-a", "cam-3", "F5"),
	} {
		mustUpload(t, c, u)
	}
	if err := c.SetUploadState(ctx, "up-3", catalog.UploadRefused, "sha256 mismatch", ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    catalog.UploadFilter
		want string
	}{
		{catalog.UploadFilter{}, "up-5 up-4 up-3 up-2 up-1"},
		{catalog.UploadFilter{Dock: "dock-a"}, "up-5 up-3 up-1"},
		{catalog.UploadFilter{DeviceID: "cam-2"}, "up-3 up-2"},
		{catalog.UploadFilter{Unit: "unit-3"}, "up-4 up-1"},
		{catalog.UploadFilter{Unit: "unit-9"}, "up-3 up-2"},
		{catalog.UploadFilter{Unit: "unit-none"}, ""},
		{catalog.UploadFilter{Unit: "unit-9", Dock: "dock-b"}, "up-2"},
		{catalog.UploadFilter{State: catalog.UploadRefused}, "up-3"},
		{catalog.UploadFilter{State: catalog.UploadReceiving, Limit: 2}, "up-5 up-4"},
	} {
		us, err := c.Uploads(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		for i, u := range us {
			if i > 0 {
				got += " "
			}
			got += u.ID
		}
		if got != tc.want {
			t.Errorf("Uploads(%+v) = %q, want %q", tc.f, got, tc.want)
		}
	}
	if us, _ := c.Uploads(ctx, catalog.UploadFilter{DeviceID: "cam-1"}); len(us) != 2 || us[1].Dock != "dock-a" || us[1].GPS == nil {
		t.Fatalf("listed uploads not whole: %+v", us)
	}
}

// Two recordings of one event are linked once, either way round.
func testSameEvent(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	for _, id := range []string{"a", "b", "c"} {
		if err := c.CreateRecording(ctx, recording(id, "cam-1", t0)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range [][2]string{{"b", "a"}, {"a", "b"}, {"b", "a"}, {"c", "a"}} {
		if err := c.LinkSameEvent(ctx, p[0], p[1]); err != nil {
			t.Fatalf("LinkSameEvent(%s, %s): %v", p[0], p[1], err)
		}
	}
	for id, want := range map[string][]string{"a": {"b", "c"}, "b": {"a"}, "c": {"a"}, "none": {}} {
		if got, err := c.SameEvent(ctx, id); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("SameEvent(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	var rows int
	if err := c.DB().QueryRow(`SELECT COUNT(*) FROM recording_links`).Scan(&rows); err != nil || rows != 2 {
		t.Fatalf("%d link rows, %v; want 2 (each pair once)", rows, err)
	}
	if err := c.LinkSameEvent(ctx, "a", "a"); err == nil {
		t.Fatal("a recording linked to itself")
	}
	if err := c.LinkSameEvent(ctx, "a", "ghost"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("link to an unknown recording: %v, want ErrNotFound", err)
	}
}
