#!/usr/bin/env bash
# The main job on the embedded default: bodycam serve with a data directory,
# and one simulated recorder publishing a test pattern with a burned-in clock
# and a tone. Ctrl-C (or SIGTERM, to this script or to the make that runs
# it) stops both and what they started; nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${BODYCAM_DATA_DIR:-./data}
HTTP=${BODYCAM_HTTP_ADDR:-127.0.0.1:8080}

# Our children die with us, however we die (setpriv's parent-death signal);
# and when we are told to stop, we stop them first.
serve= sim=
stop() {
  trap - EXIT INT TERM
  [[ -n $sim ]] && kill -TERM "$sim" 2>/dev/null
  [[ -n $serve ]] && kill -TERM "$serve" 2>/dev/null
  wait 2>/dev/null
}
trap 'stop' EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
child() { setpriv --pdeathsig TERM -- "$@"; }

# No load balancer to drain from here: stop at once.
child ./bin/bodycam serve --data-dir "$DATA" --http-addr "$HTTP" --shutdown-delay 0 &
serve=$!
# Wait until it answers; if it exits first, say so with its own error (its
# log, above) and its exit code.
for i in $(seq 1 300); do
  if ! kill -0 "$serve" 2>/dev/null; then
    code=0
    wait "$serve" || code=$?
    serve=
    echo "run: bodycam serve exited with code $code before it was ready; its error is above" >&2
    exit $((code == 0 ? 1 : code))
  fi
  curl -fs "http://$HTTP/healthz" >/dev/null 2>&1 && break
  if ((i == 300)); then
    echo "run: bodycam serve did not answer http://$HTTP/healthz within 30 s" >&2
    exit 1
  fi
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
child ./bin/bodycam simulate --api "http://$HTTP" --data-dir "$DATA" --devices 1 --mode live &
sim=$!
# Recording means the recorder is live: wait for it, and stop if either
# process gives up first.
live=
for _ in $(seq 1 300); do
  for pid in $serve $sim; do
    if ! kill -0 "$pid" 2>/dev/null; then
      code=0
      wait "$pid" || code=$?
      [[ $pid == "$serve" ]] && { serve=; what="bodycam serve"; } || { sim=; what="the simulated recorder"; }
      echo "run: $what exited with code $code; its error is above" >&2
      exit $((code == 0 ? 1 : code))
    fi
  done
  if curl -fs -H "Authorization: Bearer $TOKEN" "http://$HTTP/api/v1/live" 2>/dev/null | grep -q '"device_id": "sim-1"'; then
    live=1
    break
  fi
  sleep 0.1
done
if [[ -z $live ]]; then
  echo "run: the simulated recorder sim-1 did not go live within 30 s" >&2
  exit 1
fi
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
# Until one of them ends (or we are told to stop): then stop the other.
code=0
wait -n "$serve" "$sim" || code=$?
echo "run: a process ended (code $code); stopping" >&2
exit "$code"
