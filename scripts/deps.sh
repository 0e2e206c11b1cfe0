#!/usr/bin/env bash
# Installs what `make run` (deps.sh run) or `make test` (deps.sh test) needs
# and is missing, on Debian 12 or the machine kind this project runs on; CI
# (.ci/run) runs it too. Debian packages are installed when run as root;
# otherwise it prints the exact apt-get line and exits 2. It changes nothing
# that is already there, so a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-}
case "$what" in
run | test) ;;
*)
  echo "usage: scripts/deps.sh run|test" >&2
  exit 2
  ;;
esac

export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null 2>&1; then
  echo "deps: Go 1.26 is needed (https://go.dev/dl/, into /usr/local/go); it is not on PATH nor in /usr/local/go/bin" >&2
  exit 2
fi
export PATH="$PATH:$(go env GOPATH)/bin"

# What the build and `make run` need: the FFmpeg development files and
# pkg-config build transcode/ (cgo, go-astiav for FFmpeg 5.1); ffmpeg and a
# font make the simulated recorder's test pattern with its burned-in clock;
# curl drives the API from scripts/run.sh.
packages=(make curl ca-certificates ffmpeg fonts-dejavu-core pkg-config
  libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libswscale-dev
  libswresample-dev libavdevice-dev)
# What `make test` needs besides: GStreamer is the second real publisher of
# the ingest tests, Chromium runs the console's browser test (test/browser),
# npm installs its driver, util-linux's prlimit runs the server under a small
# file limit, systemd-analyze checks the systemd unit (deploy/), and jq and
# openssl check a dock's receipt as README "Dock upload" says (and an audit
# report's signature), and poppler-utils' pdftotext reads audit reports.
if [[ $what == test ]]; then
  packages+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp chromium npm
    util-linux systemd jq openssl poppler-utils)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# npm from another source than Debian's package (e.g. NodeSource's nodejs,
# which carries its own npm) is as good.
if ((${#missing[@]})) && command -v npm >/dev/null 2>&1; then
  for i in "${!missing[@]}"; do
    [[ ${missing[$i]} == npm ]] && unset 'missing[i]'
  done
  missing=("${missing[@]}")
fi
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing Debian packages; install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    echo "then run this again." >&2
    exit 2
  fi
  echo "deps: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

[[ $what == run ]] && exit 0

# The console's browser test: playwright-core, pinned by the lock file,
# drives the Debian chromium above (it never downloads a browser).
if [[ ! -d test/browser/node_modules ]]; then
  echo "deps: installing the browser test's npm packages"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix test/browser
fi

# The MinIO server the storage tests start on a loopback port (built once,
# about 3 to 6 minutes).
MINIO=github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
if ! command -v minio >/dev/null 2>&1 && [[ -z ${BODYCAM_MINIO_BIN:-} ]]; then
  echo "deps: building the MinIO server ($MINIO)"
  go install "$MINIO"
fi

# The deployment tests render deploy/k8s with kubectl (on this machine kind;
# elsewhere: https://kubernetes.io/docs/tasks/tools/).
if ! command -v kubectl >/dev/null 2>&1; then
  echo "deps: kubectl is needed by the deployment tests (kubectl kustomize deploy/k8s) and is not on PATH" >&2
  exit 2
fi

# PostgreSQL (127.0.0.1:5432, user postgres, trust) and Redis (127.0.0.1:6379)
# run on this machine kind; start them if they are installed but stopped.
up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }
if ! up; then
  if [[ $(id -u) -eq 0 ]] && command -v pg_ctlcluster >/dev/null 2>&1 && [[ -d /etc/postgresql ]]; then
    echo "deps: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  fi
fi
if ! redis_up; then
  if [[ $(id -u) -eq 0 ]] && command -v redis-server >/dev/null 2>&1; then
    echo "deps: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
  fi
fi
for _ in $(seq 1 30); do
  up && redis_up && break
  sleep 1
done
if ! up; then
  echo "deps: the tests need PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth), or BODYCAM_TEST_POSTGRES_URL" >&2
  [[ -n ${BODYCAM_TEST_POSTGRES_URL:-} ]] || exit 2
fi
if ! redis_up; then
  echo "deps: the tests need Redis on 127.0.0.1:6379" >&2
  exit 2
fi
