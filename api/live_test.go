package api_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/coord"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/ingest"
	"github.com/bodycam/bodycam/live"
)

// fakeLive is a relay and an ingest with viewers and publishers of cam-a
// (unit a) and cam-b (unit b).
type fakeLive struct{}

func (fakeLive) Offer(context.Context, live.OfferRequest) (live.Session, error) {
	return live.Session{}, live.ErrNotLive
}
func (fakeLive) Hangup(device, id, user string, admin bool) error { return nil }
func (fakeLive) Viewers() []live.ViewerInfo {
	return []live.ViewerInfo{{ID: "v-a", Device: "cam-a", User: "s-a", Remote: "10.1.0.1:1"}, {ID: "v-b", Device: "cam-b", User: "s-b", Remote: "10.2.0.1:1"}}
}
func (fakeLive) Live() []ingest.Live {
	return []ingest.Live{{DeviceID: "cam-a", RemoteAddr: "10.1.9.9:1"}, {DeviceID: "cam-b", RemoteAddr: "10.2.9.9:1"}}
}

// The leak of issue 10 (finding 15): a supervisor saw other units' viewing
// sessions (who, from which address, with which browser). Viewers, the
// viewing audit and who is live are scoped like footage.
func TestLiveListsScoped(t *testing.T) {
	rolesFixture(t)
	f := lastFixture
	ctx := context.Background()
	if err := f.cat.CreateDevice(ctx, evidence.Device{ID: "cam-b", OfficerID: "o-b", SecretHash: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []evidence.LiveView{
		{ID: "lv-a", DeviceID: "cam-a", User: "s-a", RemoteAddr: "10.1.0.1:1", UserAgent: "ua-a", StartedAt: time.Now()},
		{ID: "lv-b", DeviceID: "cam-b", User: "s-b", RemoteAddr: "10.2.0.1:1", UserAgent: "ua-b", StartedAt: time.Now()},
	} {
		if err := f.cat.StartLiveView(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	// On its own; in a cluster, where who is live comes from every node's
	// leases (cam-b's on another node); and in a cluster whose
	// coordination does not answer (this node's publishers).
	for name, leases := range map[string]api.LeaseLister{"alone": nil, "cluster": fakeLeases{}, "coordination down": fakeLeases{down: true}} {
		srv := httptest.NewServer(api.New(api.Options{Catalog: f.cat, Users: f.cat, Cases: f.cat, Custody: f.ledger, Store: f.store,
			Keys: f.keys, Relay: fakeLive{}, Live: fakeLive{}, Leases: leases, AdminToken: token, Registry: prometheus.NewRegistry(), Log: quiet}).Handler())
		t.Run(name, func(t *testing.T) { checkLiveScope(t, srv.URL) })
		srv.Close()
	}
}

// fakeLeases are the cluster's device leases: cam-a here, cam-b on
// another node, each with its recorder's address.
type fakeLeases struct{ down bool }

func (l fakeLeases) DeviceLeases(context.Context) ([]coord.DeviceLease, error) {
	if l.down {
		return nil, coord.ErrUnavailable
	}
	return []coord.DeviceLease{{Device: "cam-a", Node: "node-a", Recording: "rec-a", RemoteAddr: "10.1.9.9:1"},
		{Device: "cam-b", Node: "node-b", Recording: "rec-b", RemoteAddr: "10.2.9.9:1"}}, nil
}

func checkLiveScope(t *testing.T, srv string) {
	for who, want := range map[string]string{"s-a": "a", "s-b": "b", "aud": "ab", "adm": "ab"} {
		for _, path := range []string{"/api/v1/live/viewers", "/api/v1/live/views", "/api/v1/live"} {
			code, body := call(t, srv, "GET", path, "tok-"+who, "")
			if who == "adm" && path == "/api/v1/live/views" {
				continue // admins read no viewing audit
			}
			if code != 200 {
				t.Fatalf("%s %s: %d %s", who, path, code, body)
			}
			got := ""
			for _, unit := range "ab" {
				if strings.Contains(body, "cam-"+string(unit)) || strings.Contains(body, "10."+map[rune]string{'a': "1", 'b': "2"}[unit]+".") {
					got += string(unit)
				}
			}
			if got != want {
				t.Errorf("%s sees units %q in %s, want %q: %s", who, got, path, want, body)
			}
		}
	}
}
