#!/usr/bin/env bash
# A real Prometheus scraping a real bodycam node on loopback, with
# alerts.yml loaded and a simulated recorder publishing; then every query of
# deploy/grafana/bodycam.json is run through Prometheus' query API. Prints
# the target's health, each rule's health, and each query's outcome; exits
# non-zero if a rule or a query fails. Run from the repository root:
#
#     bash deploy/prometheus/check-live.sh
#
# Needs go, ffmpeg and python3. Uses `prometheus` and `promtool` from PATH,
# else unpacks Debian's prometheus package (apt-get download; nothing is
# installed or started as a service).
set -euo pipefail
cd "$(dirname "$0")/../.."
W=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  PROM=prometheus PROMTOOL=promtool
else
  (cd "$W" && apt-get download -q prometheus >/dev/null && dpkg -x prometheus_*.deb deb)
  PROM=$W/deb/usr/bin/prometheus PROMTOOL=$W/deb/usr/bin/promtool
fi
"$PROMTOOL" --version | head -1
"$PROMTOOL" check config deploy/prometheus/prometheus.yml
"$PROMTOOL" check rules deploy/prometheus/alerts.yml

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(port) RTSP=$(port) ICE=$(port) PROMPORT=$(port)
go build -o "$W/bodycam" ./cmd/bodycam
"$W/bodycam" serve --data-dir "$W/data" --http-addr "127.0.0.1:$HTTP" --rtsp-addr "127.0.0.1:$RTSP" --rtsp-udp-addr "" \
  --webrtc-udp-addr "127.0.0.1:$ICE" --webrtc-tcp-addr "127.0.0.1:$ICE" --segment-duration 1s 2>"$W/serve.log" &
pids+=($!)
mkdir -p "$W/prom"
cp deploy/prometheus/alerts.yml "$W/prom/"
# The site's configuration, scraping this one node every second.
sed -e "s/bodycam-1:8080/127.0.0.1:$HTTP/" -e '/bodycam-[23]:8080/d' -e 's/scrape_interval: 15s/scrape_interval: 1s/' \
  -e 's/evaluation_interval: 15s/evaluation_interval: 1s/' -e 's/scrape_timeout: 10s/scrape_timeout: 1s/' \
  deploy/prometheus/prometheus.yml >"$W/prom/prometheus.yml"
"$PROM" --config.file="$W/prom/prometheus.yml" --storage.tsdb.path="$W/prom/tsdb" \
  --web.listen-address="127.0.0.1:$PROMPORT" 2>"$W/prom.log" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:$PROMPORT/-/ready" >/dev/null 2>&1 && break
  sleep 0.2
done
"$W/bodycam" simulate --api "http://127.0.0.1:$HTTP" --data-dir "$W/data" --devices 2 --mode clip --size 320x240 \
  --bitrate 500k --duration 20s --prefix live- --loss 0.02 >"$W/sim.log" 2>&1
sleep 10 # the last uploads, and some scrapes after them

PROMURL="http://127.0.0.1:$PROMPORT" python3 - <<'PY'
import json, os, sys, urllib.parse, urllib.request
base = os.environ["PROMURL"]
get = lambda path, **q: json.load(urllib.request.urlopen(base + path + ("?" + urllib.parse.urlencode(q) if q else "")))
bad = 0
for t in get("/api/v1/targets")["data"]["activeTargets"]:
    print("target", t["scrapeUrl"], t["health"], t["lastError"])
    bad += t["health"] != "up"
for g in get("/api/v1/rules")["data"]["groups"]:
    for r in g["rules"]:
        print("rule", r["name"], r["health"], r["state"], r.get("lastError", ""))
        bad += r["health"] != "ok"
d = json.load(open("deploy/grafana/bodycam.json"))
n = withdata = 0
for p in d["panels"]:
    for t in p.get("targets", []):
        e = t["expr"].replace("$instance", ".*").replace("$__rate_interval", "1m")
        r = get("/api/v1/query", query=e)
        n += 1
        if r["status"] != "success":
            print("query FAILED", p["title"], t["refId"], r)
            bad += 1
        elif r["data"]["result"]:
            withdata += 1
        else:
            print("query ok, no data yet (a series that appears with its first event):", p["title"], t["refId"])
print(f"dashboard queries: {n} run, {withdata} with data; failures: {bad}")
sys.exit(1 if bad else 0)
PY
