package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bodycam/bodycam/simulate"
)

// simulateCmd registers simulated recorders (once; their secrets are kept in
// <data-dir>/simulator.json, mode 0600) and publishes until interrupted.
func simulateCmd(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stdout)
	apiURL := fs.String("api", "http://127.0.0.1:8080", "bodycam API to register the recorders with")
	dataDir := fs.String("data-dir", "./data", "where the admin token is read from and the simulator keeps its state")
	token := fs.String("admin-token", getenv("BODYCAM_ADMIN_TOKEN"), "admin token (default: read <data-dir>/admin-token)")
	devices := fs.Int("devices", 1, "how many recorders")
	prefix := fs.String("prefix", "sim-", "device ids are <prefix>1, <prefix>2, ...")
	mode := fs.String("mode", "live", "live: ffmpeg encodes a test pattern with the wall clock and a tone, per recorder; clip: loop a pre-encoded clip (cheap, for load)")
	transport := fs.String("transport", "tcp", "tcp or udp")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	size := fs.String("size", "1280x720", "picture size")
	fps := fs.Int("fps", 30, "frames per second")
	bitrate := fs.String("bitrate", "4M", "video bitrate")
	caseID := fs.String("case", "", "publish with ?case=<id>")
	bframes := fs.Int("bframes", -1, "clip mode: at most this many consecutive B-frames (0: none; -1: the encoder's default, which uses them)")
	loss := fs.Float64("loss", 0, "clip mode: share of RTP packets each recorder drops at random, as a bad uplink would (0.01: 1 %)")
	stagger := fs.Duration("stagger", 4*time.Second, "spread the recorders' starts over this long (real recorders do not start on the same frame)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return flagError(err)
	}
	spec := simulate.DefaultClip
	spec.FPS, spec.VideoBitrate, spec.BFrames = *fps, *bitrate, *bframes
	if _, err := fmt.Sscanf(*size, "%dx%d", &spec.Width, &spec.Height); err != nil {
		return fmt.Errorf("size: want WIDTHxHEIGHT, got %q", *size)
	}
	if *mode != "live" && *mode != "clip" {
		return fmt.Errorf("mode: want live or clip, got %q", *mode)
	}
	if *transport != "tcp" && *transport != "udp" {
		return fmt.Errorf("transport: want tcp or udp, got %q", *transport)
	}
	if *loss < 0 || *loss >= 1 || (*loss > 0 && *mode != "clip") {
		return errors.New("loss: a share from 0 to below 1, in clip mode")
	}
	if *devices < 1 {
		return errors.New("devices: at least 1")
	}
	if *token == "" {
		b, err := os.ReadFile(filepath.Join(*dataDir, "admin-token"))
		if err != nil {
			return fmt.Errorf("admin-token: none given and %v", err)
		}
		*token = strings.TrimSpace(string(b))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "simulate")
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	state := filepath.Join(*dataDir, "simulator.json")
	urls, err := simulatedDevices(*apiURL, *token, state, *prefix, *devices)
	if err != nil {
		return err
	}
	var clip *simulate.Clip
	if *mode == "clip" {
		path, err := simulate.EnsureClip(ctx, filepath.Join(*dataDir, "sim"), spec)
		if err != nil {
			return err
		}
		if clip, err = simulate.LoadClip(path); err != nil {
			return err
		}
		log.Info("clip loaded", "path", path, "loop", clip.Duration, "mbit_per_s", float64(clip.Bytes*8)/clip.Duration.Seconds()/1e6)
	}
	fmt.Fprintf(stdout, "publishing %d simulated recorder(s) (%s mode); Ctrl-C stops them\n", *devices, *mode)
	// The admin token lists who is live; recordings are read by an officer,
	// a supervisor or an auditor (admins read no evidence).
	fmt.Fprintf(stdout, "  live:       curl -H 'Authorization: Bearer <admin token>' %s/api/v1/live\n", *apiURL)
	fmt.Fprintf(stdout, "  recordings: curl -H 'Authorization: Bearer <a supervisor's or auditor's token>' '%s/api/v1/recordings?device=%s1'\n", *apiURL, *prefix)
	var wg sync.WaitGroup
	for i, u := range urls {
		if *caseID != "" {
			u += "?case=" + url.QueryEscape(*caseID)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Stagger the starts; reconnect like a recorder would.
			select {
			case <-time.After(time.Duration(i) * *stagger / time.Duration(len(urls))):
			case <-ctx.Done():
				return
			}
			for ctx.Err() == nil {
				var err error
				if clip != nil {
					err = simulate.PublishClip(ctx, u, clip, *transport == "tcp", *loss)
				} else {
					err = simulate.PublishLive(ctx, u, spec, *transport == "tcp")
				}
				if err != nil && ctx.Err() == nil {
					log.Warn("publisher stopped; reconnecting in 2s", "device", fmt.Sprintf("%s%d", *prefix, i+1), "err", err)
					select {
					case <-time.After(2 * time.Second):
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

type simState struct {
	Devices map[string]string `json:"devices"` // id -> publish URL with credentials
}

// simulatedDevices returns the publish URLs (with credentials) of the
// simulated devices, registering those not yet known.
func simulatedDevices(apiURL, token, statePath, prefix string, n int) ([]string, error) {
	st := simState{Devices: map[string]string{}}
	if b, err := os.ReadFile(statePath); err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("simulator state %s: %v", statePath, err)
		}
	}
	var urls []string
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("%s%d", prefix, i)
		if u, ok := st.Devices[id]; ok {
			urls = append(urls, u)
			continue
		}
		body := fmt.Sprintf(`{"id":%q,"name":"Simulated recorder %d","officer_id":"sim-officer-%d"}`, id, i, i)
		req, _ := http.NewRequest("POST", strings.TrimRight(apiURL, "/")+"/api/v1/devices", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("api: %v", err)
		}
		var out struct {
			User, Pass, URL string
			Error           string `json:"error"`
		}
		var raw map[string]string
		json.NewDecoder(resp.Body).Decode(&raw)
		resp.Body.Close()
		out.User, out.Pass, out.URL, out.Error = raw["rtsp_username"], raw["rtsp_password"], raw["publish_url"], raw["error"]
		if resp.StatusCode == http.StatusConflict {
			return nil, fmt.Errorf("device %s exists but its secret is not in %s; use another --prefix", id, statePath)
		}
		if resp.StatusCode != http.StatusCreated {
			return nil, fmt.Errorf("register %s: %s: %s", id, resp.Status, out.Error)
		}
		u, err := url.Parse(out.URL)
		if err != nil {
			return nil, err
		}
		u.User = url.UserPassword(out.User, out.Pass)
		st.Devices[id] = u.String()
		urls = append(urls, u.String())
		b, _ := json.MarshalIndent(st, "", "  ")
		if err := os.WriteFile(statePath, b, 0o600); err != nil {
			return nil, err
		}
	}
	return urls, nil
}
