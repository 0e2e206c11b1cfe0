package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bodycam/bodycam/api"
	"github.com/bodycam/bodycam/catalog"
	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/outbox"
)

// Admins list the events webhooks gave up on and queue one again, which is
// a custody event; a dead letter not dead, missing, or of a webhook no
// longer configured is refused.
func TestDeadLetterEndpoints(t *testing.T) {
	var hooks *outbox.Webhooks
	srv, _ := rolesFixture(t, func(o *api.Options) {
		var err error
		hooks, err = outbox.NewWebhooks(outbox.WebhookOptions{Catalog: o.Catalog.(*catalog.Catalog),
			URLs: []string{"https://user:pw@receiver.example/bodycam?key=k"}, Secret: []byte("0123456789abcdef"), Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		o.Webhooks = hooks
	})
	ctx := context.Background()
	cat := lastFixture.cat
	if _, err := cat.SequenceOutbox(ctx, 100, time.Now()); err != nil {
		t.Fatal(err)
	}
	evs, err := cat.OutboxEvents(ctx, 0, 100)
	if err != nil || len(evs) < 2 {
		t.Fatalf("the fixture's events: %v, %v", evs, err)
	}
	hook := hooks.Hooks()[0]
	now := time.Now().UTC()
	dead, err := cat.AddDeadLetter(ctx, catalog.DeadLetter{Webhook: hook.ID, URL: hook.URL, Event: evs[0], Attempts: 40,
		FirstAttempt: now.Add(-25 * time.Hour), LastAttempt: now, LastError: "answered 503 Service Unavailable", DeadAt: now})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := cat.AddDeadLetter(ctx, catalog.DeadLetter{Webhook: "wh-000000000000", URL: "https://old.example/", Event: evs[1], Attempts: 1,
		FirstAttempt: now, LastAttempt: now})
	if err != nil {
		t.Fatal(err)
	}

	do := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok-adm")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := do("GET", "/api/v1/webhooks/dead-letters")
	var list struct {
		Items []struct {
			ID       int64  `json:"id"`
			Webhook  string `json:"webhook"`
			URL      string `json:"url"`
			State    string `json:"state"`
			Attempts int    `json:"attempts"`
			Event    struct {
				ID   string          `json:"id"`
				Seq  int64           `json:"seq"`
				Kind string          `json:"kind"`
				Data json.RawMessage `json:"data"`
			} `json:"event"`
		} `json:"items"`
		Webhooks []outbox.Hook `json:"webhooks"`
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Items) != 2 {
		t.Fatalf("list: %d %s", code, body)
	}
	if it := list.Items[1]; it.ID != dead.ID || it.Webhook != hook.ID || it.State != "dead" || it.Attempts != 40 ||
		it.Event.ID != evs[0].ID || it.Event.Seq != evs[0].Seq || it.Event.Kind != string(evs[0].Kind) || it.Event.Data != nil {
		t.Fatalf("dead letter as listed: %+v", it)
	}
	if len(list.Webhooks) != 1 || list.Webhooks[0] != hook || strings.Contains(body, "pw") || strings.Contains(body, "key=") {
		t.Fatalf("webhooks as listed: %+v (%s)", list.Webhooks, body)
	}
	for path, want := range map[string]int{
		"/api/v1/webhooks/dead-letters?state=dead":                      2,
		"/api/v1/webhooks/dead-letters?webhook=" + hook.ID:              1,
		fmt.Sprintf("/api/v1/webhooks/dead-letters?before=%d", gone.ID): 1,
		"/api/v1/webhooks/dead-letters?limit=1":                         1,
		"/api/v1/webhooks/dead-letters?state=queued":                    0,
	} {
		code, body := do("GET", path)
		list.Items = nil
		if json.Unmarshal([]byte(body), &list); code != 200 || len(list.Items) != want {
			t.Errorf("%s: %d %s; want %d items", path, code, body, want)
		}
	}
	for _, path := range []string{"/api/v1/webhooks/dead-letters?state=lost", "/api/v1/webhooks/dead-letters?limit=0",
		"/api/v1/webhooks/dead-letters?limit=1001", "/api/v1/webhooks/dead-letters?before=x"} {
		if code, body := do("GET", path); code != 400 {
			t.Errorf("%s: %d %s, want 400", path, code, body)
		}
	}

	code, body = do("POST", fmt.Sprintf("/api/v1/webhooks/dead-letters/%d/retry", dead.ID))
	if code != 200 || !strings.Contains(body, `"state": "queued"`) || !strings.Contains(body, `"requeued_by": "adm"`) {
		t.Fatalf("retry: %d %s", code, body)
	}
	ledger, err := cat.CustodyEvents(ctx, catalog.CustodyFilter{TargetIDs: []string{evs[0].ID}})
	if err != nil || len(ledger) != 1 || ledger[0].Action != evidence.ActionWebhook || ledger[0].Actor != "adm" ||
		ledger[0].TargetKind != "event" || !strings.Contains(ledger[0].Detail, hook.ID) {
		t.Fatalf("custody of the retry: %+v, %v", ledger, err)
	}
	for path, want := range map[string]int{
		fmt.Sprintf("/api/v1/webhooks/dead-letters/%d/retry", dead.ID): 409, // queued already
		fmt.Sprintf("/api/v1/webhooks/dead-letters/%d/retry", gone.ID): 409, // its webhook is not configured
		"/api/v1/webhooks/dead-letters/9999/retry":                     404,
		"/api/v1/webhooks/dead-letters/x/retry":                        400,
	} {
		if code, body := do("POST", path); code != want {
			t.Errorf("POST %s: %d %s, want %d", path, code, body, want)
		}
	}
}

// What a dead letter's event tells (a case step's reason, which footage a
// case holds, a recording's officer) is case and footage data, which
// admins do not read: the list and the retry show its envelope, not its
// data. The retry still sends the whole event.
func TestDeadLettersWithholdEventData(t *testing.T) {
	var hooks *outbox.Webhooks
	srv, _ := rolesFixture(t, func(o *api.Options) {
		var err error
		hooks, err = outbox.NewWebhooks(outbox.WebhookOptions{Catalog: o.Catalog.(*catalog.Catalog),
			URLs: []string{"https://receiver.example/bodycam"}, Secret: []byte("0123456789abcdef"), Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		o.Webhooks = hooks
	})
	ctx := context.Background()
	cat := lastFixture.cat
	const secret = "the witness Jane Roe named the suspect"
	if err := cat.TransitionCase(ctx, evidence.CaseTransition{CaseID: "C-1", From: evidence.CaseFiled, To: evidence.CaseInvestigating,
		By: "o-a", Reason: secret, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.SequenceOutbox(ctx, 100, time.Now()); err != nil {
		t.Fatal(err)
	}
	evs, err := cat.OutboxEvents(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	hook := hooks.Hooks()[0]
	now := time.Now().UTC()
	var ids []int64
	for _, e := range evs {
		d, err := cat.AddDeadLetter(ctx, catalog.DeadLetter{Webhook: hook.ID, URL: hook.URL, Event: e, Attempts: 3,
			FirstAttempt: now, LastAttempt: now, LastError: "answered 400 Bad Request", DeadAt: now})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	code, list := call(t, srv.URL, "GET", "/api/v1/webhooks/dead-letters", "tok-adm", "")
	_, retried := call(t, srv.URL, "POST", fmt.Sprintf("/api/v1/webhooks/dead-letters/%d/retry", ids[len(ids)-1]), "tok-adm", "")
	for what, body := range map[string]string{"list": list, "retry": retried} {
		if strings.Contains(body, secret) || strings.Contains(body, `"officer_id"`) || strings.Contains(body, `"recording_id"`) {
			t.Errorf("the dead letters' %s shows an admin what the events tell: %s", what, body)
		}
	}
	if code != 200 || !strings.Contains(list, `"kind": "case.step"`) || !strings.Contains(list, `"case": "C-1"`) ||
		!strings.Contains(list, `"id": "`+evs[len(evs)-1].ID+`"`) {
		t.Fatalf("list: %d %s", code, list)
	}
	d, err := cat.DeadLetter(ctx, ids[len(ids)-1])
	if err != nil || !strings.Contains(string(d.Event.Data), secret) {
		t.Fatalf("the queued dead letter lost its event's data: %+v %v", d, err)
	}
}
