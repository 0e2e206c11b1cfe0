package main

// The bench's own calls to the server's API: the dock user and its token,
// the devices, an auditor, the public keys, verification.

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// client makes the bench's API calls: a server that stops answering fails
// the call instead of hanging the run. verifyClient is for verification,
// which reads and hashes a whole recording.
var (
	client       = &http.Client{Timeout: 30 * time.Second}
	verifyClient = &http.Client{Timeout: 30 * time.Minute}
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

// dockToken makes the workstation's dock user (no unit: it uploads for
// every device) and issues its API token, as an admin does.
func dockToken(ctx context.Context, admin api, user string) (string, error) {
	if err := admin.do(ctx, "POST", "/api/v1/users", fmt.Sprintf(`{"id":%q,"name":"bench workstation","role":"dock"}`, user),
		http.StatusCreated, nil); err != nil {
		return "", err
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := admin.do(ctx, "POST", "/api/v1/users/"+user+"/tokens", `{"name":"bench-dock"}`, http.StatusCreated, &out); err != nil {
		return "", err
	}
	if out.Token == "" {
		return "", fmt.Errorf("no token for %s in the answer", user)
	}
	return out.Token, nil
}

// registerDevice registers a recorder (it never streams here: its files
// come through the dock).
func registerDevice(ctx context.Context, admin api, id string) error {
	return admin.do(ctx, "POST", "/api/v1/devices", fmt.Sprintf(`{"id":%q,"name":"bench-dock camera %s"}`, id, id), http.StatusCreated, nil)
}

// userToken makes a user of role (with the admin token) and returns an API
// token of theirs, made as a user makes one: password sign-in, the first
// time replacing the password the admin set, then a token in that session.
func userToken(ctx context.Context, admin api, user, role string) (string, error) {
	initial, pw := "bench "+user+" initial password", "bench "+user+"'s own password"
	if err := admin.do(ctx, "POST", "/api/v1/users", fmt.Sprintf(`{"id":%q,"role":%q,"password":%q}`, user, role, initial),
		http.StatusCreated, nil); err != nil {
		return "", err
	}
	send := func(path, body string, cookies []*http.Cookie) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", admin.base+path, strings.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Bodycam-Console", "1")
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	resp, _, err := send("/api/v1/session", fmt.Sprintf(`{"user":%q,"password":%q}`, user, initial), nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("sign in as %s: %s", user, resp.Status)
	}
	// The password the admin set is replaced before anything else; the
	// session goes on under a new cookie.
	resp, _, err = send("/api/v1/users/"+user+"/password", fmt.Sprintf(`{"current_password":%q,"password":%q}`, initial, pw), resp.Cookies())
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusNoContent {
		return "", fmt.Errorf("new password for %s: %s", user, resp.Status)
	}
	resp, b, err := send("/api/v1/tokens", `{"name":"bench-dock"}`, resp.Cookies())
	if err != nil {
		return "", err
	}
	var out struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &out) != nil || out.Token == "" {
		return "", fmt.Errorf("API token for %s: %s", user, resp.Status)
	}
	return out.Token, nil
}

// publicKeys are the server's signing keys by id (GET /api/v1/keys).
func publicKeys(ctx context.Context, a api) (map[string]ed25519.PublicKey, error) {
	var list struct {
		Items []struct {
			ID        string `json:"id"`
			PublicKey []byte `json:"public_key"`
		} `json:"items"`
	}
	if err := a.do(ctx, "GET", "/api/v1/keys", "", http.StatusOK, &list); err != nil {
		return nil, err
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range list.Items {
		if len(k.PublicKey) == ed25519.PublicKeySize {
			keys[k.ID] = ed25519.PublicKey(k.PublicKey)
		}
	}
	return keys, nil
}

// verification is POST /api/v1/recordings/{id}/verify's answer.
type verification struct {
	OK      bool   `json:"ok"`
	Reason  string `json:"reason"`
	Checked int    `json:"checked"`
}

// recordingInfo is what the bench reads of GET /api/v1/recordings/{id}.
type recordingInfo struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	DeviceID  string    `json:"device_id"`
	State     string    `json:"state"`
	StartedAt time.Time `json:"started_at"`
	Origin    *struct {
		FileName   string `json:"file_name"`
		SHA256     string `json:"sha256"`
		Size       int64  `json:"size"`
		TimeSource string `json:"time_source"`
	} `json:"origin"`
}
