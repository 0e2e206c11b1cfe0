package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
)

// Each upload recording's stored upload is found from the recording, in
// batches; stream recordings have none. Same-event links are listed for
// each recording of a batch, both ways round.
func testUploadsOfRecordings(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	mustDevice(t, c, "cam-1")
	mustDevice(t, c, "cam-2")
	stream := recording("s1", "cam-1", t0.Add(-2*time.Hour))
	if err := c.CreateRecording(ctx, stream); err != nil {
		t.Fatal(err)
	}
	for i, u := range []evidence.Upload{upload("up-1", "dock-1", "cam-1", "FILE0001"), upload("up-2", "dock-1", "cam-2", "FILE0002")} {
		mustUpload(t, c, u)
		r, s := uploaded(u, []string{"u1", "u2"}[i])
		if _, _, err := c.StoreUpload(ctx, r, s, u.ID); err != nil {
			t.Fatal(err)
		}
	}
	// A refused upload of the same file name: not a recording's.
	refused := upload("up-3", "dock-1", "cam-1", "FILE0003")
	mustUpload(t, c, refused)
	if err := c.SetUploadState(ctx, "up-3", catalog.UploadRefused, "mismatch", fileHash("other")); err != nil {
		t.Fatal(err)
	}
	m, err := c.UploadsOfRecordings(ctx, []string{"s1", "u1", "u2", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["u1"].ID != "up-1" || m["u2"].ID != "up-2" || m["u1"].FileName != "FILE0001.MP4" ||
		m["u1"].State != catalog.UploadStored || m["u2"].DeviceID != "cam-2" || !m["u1"].Important {
		t.Fatalf("UploadsOfRecordings = %+v", m)
	}
	if u, err := c.UploadOfRecording(ctx, "u2"); err != nil || u.ID != "up-2" || u.SHA256 != fileHash("FILE0002") {
		t.Fatalf("UploadOfRecording(u2) = %+v, %v", u, err)
	}
	if _, err := c.UploadOfRecording(ctx, "s1"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("UploadOfRecording(stream) = %v, want ErrNotFound", err)
	}
	if m, err := c.UploadsOfRecordings(ctx, nil); err != nil || len(m) != 0 {
		t.Fatalf("no ids: %v, %v", m, err)
	}
	many := make([]string, 2500)
	for i := range many {
		many[i] = fmt.Sprintf("r%d", i)
	}
	many[2400] = "u2"
	if m, err := c.UploadsOfRecordings(ctx, many); err != nil || len(m) != 1 || m["u2"].ID != "up-2" {
		t.Fatalf("2500 ids, in batches: %v, %v", m, err)
	}

	if err := c.LinkSameEvent(ctx, "u1", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := c.LinkSameEvent(ctx, "s1", "u2"); err != nil {
		t.Fatal(err)
	}
	se, err := c.SameEvents(ctx, []string{"s1", "u1", "u2", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"s1": {"u1", "u2"}, "u1": {"s1"}, "u2": {"s1"}}
	if !reflect.DeepEqual(se, want) {
		t.Fatalf("SameEvents = %v, want %v", se, want)
	}
	many[1500] = "s1"
	if se, err := c.SameEvents(ctx, many); err != nil || !reflect.DeepEqual(se, map[string][]string{"s1": {"u1", "u2"}, "u2": {"s1"}}) {
		t.Fatalf("SameEvents of 2500 ids: %v, %v", se, err)
	}
}
