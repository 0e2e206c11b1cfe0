#!/usr/bin/env bash
# The main job on the embedded default: bodycam serve with a data directory,
# and one simulated recorder publishing a test pattern with a burned-in clock
# and a tone. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${BODYCAM_DATA_DIR:-./data}
HTTP=${BODYCAM_HTTP_ADDR:-127.0.0.1:8080}

./bin/bodycam serve --data-dir "$DATA" --http-addr "$HTTP" &
serve=$!
trap 'kill $sim 2>/dev/null; kill $serve 2>/dev/null; wait' EXIT INT TERM
for _ in $(seq 1 100); do
  curl -fs "http://$HTTP/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
TOKEN=$(cat "$DATA/admin-token")
# Admins run the system but read no evidence: a supervisor watches. Made
# once, its password kept beside the admin token (0600). The admin knows the
# first password it sets, so the account is made with a one-time password
# and the supervisor's own is set at once.
if [[ ! -s "$DATA/supervisor-password" ]]; then
  once=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$DATA/supervisor-password")
  curl -fsS -H "Authorization: Bearer $TOKEN" -d "{\"id\":\"supervisor\",\"name\":\"Duty supervisor\",\"role\":\"supervisor\",\"password\":\"$once\"}" \
    "http://$HTTP/api/v1/users" >/dev/null
  jar=$(mktemp)
  curl -fsS -c "$jar" -H 'Content-Type: application/json' -d "{\"user\":\"supervisor\",\"password\":\"$once\"}" \
    "http://$HTTP/api/v1/session" >/dev/null
  curl -fsS -b "$jar" -H 'X-Bodycam-Console: 1' \
    -d "{\"current_password\":\"$once\",\"password\":\"$(cat "$DATA/supervisor-password")\"}" \
    "http://$HTTP/api/v1/users/supervisor/password" >/dev/null
  rm -f "$jar"
fi
./bin/bodycam simulate --api "http://$HTTP" --data-dir "$DATA" --devices 1 --mode live &
sim=$!
sleep 6
cat <<TXT

bodycam is recording simulated recorder sim-1. Look at:
  the console:   http://$HTTP/  (account "supervisor", password in $DATA/supervisor-password: watch sim-1 live,
                 play and verify its recordings; the admin token in $DATA/admin-token manages devices and users)
  who is live:   curl -s -H 'Authorization: Bearer $TOKEN' http://$HTTP/api/v1/live
  an API token for the supervisor (cookie sign-in, then a token for scripts):
                 curl -s -c /tmp/bc -H 'Content-Type: application/json' -d '{"user":"supervisor","password":"'\$(cat $DATA/supervisor-password)'"}' http://$HTTP/api/v1/session
                 curl -s -b /tmp/bc -H 'X-Bodycam-Console: 1' -d '{"name":"cli"}' http://$HTTP/api/v1/tokens   # -> "token"
  recordings:    curl -s -H 'Authorization: Bearer <token>' 'http://$HTTP/api/v1/recordings?device=sim-1'
  one recording: curl -s -H 'Authorization: Bearer <token>' http://$HTTP/api/v1/recordings/<id>
  media:         curl -s -H 'Authorization: Bearer <token>' http://$HTTP/api/v1/recordings/<id>/media -o rec.mp4
  verify:        curl -s -X POST -H 'Authorization: Bearer <token>' http://$HTTP/api/v1/recordings/<id>/verify
  metrics:       curl -s http://$HTTP/metrics | grep ^bodycam_
Segments land in $DATA/objects/sim-1/ as they close. Ctrl-C stops.
TXT
wait $sim
