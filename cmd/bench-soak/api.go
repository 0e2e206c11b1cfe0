package main

// The bench's own calls to the server's API: users and their tokens,
// devices, who is live, recordings and their verification.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// client makes the bench's API calls: a server that stops answering fails
// the call instead of hanging the run. verifyClient is for verification,
// which reads and hashes every object of a recording.
var (
	client       = &http.Client{Timeout: 10 * time.Second}
	verifyClient = &http.Client{Timeout: 10 * time.Minute}
)

// api is the server's API as one principal (a bearer token).
type api struct {
	base, token string
	hc          *http.Client
}

func (a api) as(token string) api { a.token = token; return a }

// do makes one request and decodes a JSON answer into out (if not nil); a
// status other than want is an error carrying the body.
func (a api) do(ctx context.Context, method, path, body string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := a.hc
	if hc == nil {
		hc = client
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// userToken makes a user of role (with the admin token) and returns an API
// token of theirs, made as a user makes one: password sign-in, the first
// time replacing the password the admin set, then a token in that session.
func userToken(ctx context.Context, admin api, user, role string) (string, error) {
	initial, pw := "soak "+user+" initial password", "soak "+user+"'s own password"
	if err := admin.do(ctx, "POST", "/api/v1/users", fmt.Sprintf(`{"id":%q,"role":%q,"password":%q}`, user, role, initial),
		http.StatusCreated, nil); err != nil {
		return "", err
	}
	send := func(path, body string, cookies []*http.Cookie) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", admin.base+path, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Bodycam-Console", "1")
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	resp, err := send("/api/v1/session", fmt.Sprintf(`{"user":%q,"password":%q}`, user, initial), nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("sign in as %s: %s", user, resp.Status)
	}
	// The password the admin set is replaced before anything else; the
	// session goes on under a new cookie.
	resp, err = send("/api/v1/users/"+user+"/password", fmt.Sprintf(`{"current_password":%q,"password":%q}`, initial, pw), resp.Cookies())
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusNoContent {
		return "", fmt.Errorf("new password for %s: %s", user, resp.Status)
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", admin.base+"/api/v1/tokens", strings.NewReader(`{"name":"bench-soak"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Bodycam-Console", "1")
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	tresp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer tresp.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	if tresp.StatusCode != http.StatusCreated || json.NewDecoder(tresp.Body).Decode(&out) != nil || out.Token == "" {
		return "", fmt.Errorf("API token for %s: %s", user, tresp.Status)
	}
	return out.Token, nil
}

// registerDevice registers a recorder and returns its publish URL with
// its credentials.
func registerDevice(ctx context.Context, admin api, id, officer string) (string, error) {
	var out struct {
		User       string `json:"rtsp_username"`
		Password   string `json:"rtsp_password"`
		PublishURL string `json:"publish_url"`
	}
	if err := admin.do(ctx, "POST", "/api/v1/devices", fmt.Sprintf(`{"id":%q,"name":"soak recorder %s","officer_id":%q}`, id, id, officer),
		http.StatusCreated, &out); err != nil {
		return "", err
	}
	u, err := url.Parse(out.PublishURL)
	if err != nil || out.Password == "" {
		return "", fmt.Errorf("register %s: publish URL %q: %v", id, out.PublishURL, err)
	}
	u.User = url.UserPassword(out.User, out.Password)
	return u.String(), nil
}

// liveDevices is the set of devices GET /api/v1/live lists.
func liveDevices(ctx context.Context, a api) (map[string]bool, error) {
	var list struct {
		Items []struct {
			Device string `json:"device_id"`
		} `json:"items"`
	}
	if err := a.do(ctx, "GET", "/api/v1/live", "", http.StatusOK, &list); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, it := range list.Items {
		out[it.Device] = true
	}
	return out, nil
}

// liveViewers counts the viewing sessions the server lists, and those of
// them connected.
func liveViewers(ctx context.Context, a api) (listed, connected int, err error) {
	var list struct {
		Items []struct {
			Connected bool `json:"connected"`
		} `json:"items"`
	}
	if err := a.do(ctx, "GET", "/api/v1/live/viewers", "", http.StatusOK, &list); err != nil {
		return 0, 0, err
	}
	for _, it := range list.Items {
		if it.Connected {
			connected++
		}
	}
	return len(list.Items), connected, nil
}

// recording is what the bench reads of GET /api/v1/recordings/{id}.
type recording struct {
	ID           string     `json:"id"`
	DeviceID     string     `json:"device_id"`
	State        string     `json:"state"`
	StartedAt    time.Time  `json:"started_at"`
	EndedAt      *time.Time `json:"ended_at"`
	EndReason    string     `json:"end_reason"`
	SegmentCount int        `json:"segment_count"`
	ManifestKey  string     `json:"manifest_key"`
	Segments     []struct {
		Kind       string    `json:"kind"`
		StartedAt  time.Time `json:"started_at"`
		DurationMS float64   `json:"duration_ms"`
	} `json:"segments"`
}

// recordingsOf lists a device's recordings (without their segments).
func recordingsOf(ctx context.Context, a api, device string) ([]recording, error) {
	var list struct {
		Items []recording `json:"items"`
	}
	err := a.do(ctx, "GET", "/api/v1/recordings?limit=1000&device="+url.QueryEscape(device), "", http.StatusOK, &list)
	return list.Items, err
}

// gap is one of a verification's gaps.
type gap struct {
	Kind   string     `json:"kind"`
	Start  time.Time  `json:"start"`
	End    *time.Time `json:"end"`
	Track  string     `json:"track"`
	Detail string     `json:"detail"`
}

// instantDiscontinuity is the kind the bench gives a discontinuity gap of
// no duration: two samples of one track with the same timestamp, received
// together. Dropped packets (-loss) cause them, where a lost packet should
// be a loss gap; the summary names them apart so they are easy to tell.
const instantDiscontinuity = "discontinuity (0 s)"

// kind is the gap's kind as the bench counts it.
func (g gap) kind() string {
	if g.Kind == "discontinuity" && g.End != nil && g.End.Sub(g.Start) < time.Millisecond {
		return instantDiscontinuity
	}
	return g.Kind
}

// verification is POST /api/v1/recordings/{id}/verify's answer.
type verification struct {
	OK      bool   `json:"ok"`
	Reason  string `json:"reason"`
	Checked int    `json:"checked"`
	Gaps    []gap  `json:"gaps"`
}
