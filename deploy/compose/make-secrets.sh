#!/usr/bin/env bash
# Makes ./secrets/ for compose.yaml: every secret in its own file, readable
# only by the user of the container that reads it. Compose bind-mounts these
# files as they are (it cannot change their owner or mode), and bodycam
# refuses a secret file that group or others can read.
#
# Run once as root (it sets owners) from this directory. It never overwrites
# an existing file: delete one to make it anew (a new signing key or
# credential key has consequences: see deploy/README.md).
set -euo pipefail
cd "$(dirname "$0")"
if [[ $(id -u) != 0 ]]; then
  echo "make-secrets.sh: run as root (it gives each file to its container's user)" >&2
  exit 2
fi
command -v openssl >/dev/null || { echo "make-secrets.sh: needs openssl" >&2; exit 2; }

BODYCAM_UID=65532  # deploy/Dockerfile
MINIO_UID=65533    # minio.Dockerfile
GRAFANA_UID=472    # the grafana image's user
umask 077
install -d -m 0755 secrets

# put NAME OWNER: writes stdin to secrets/NAME, mode 0400, owned by OWNER,
# unless it exists.
put() {
  local f=secrets/$1
  if [[ -e $f ]]; then
    echo "kept    $f"
    cat >/dev/null
    return
  fi
  cat >"$f.tmp"
  chown "$2:$2" "$f.tmp"
  chmod 0400 "$f.tmp"
  mv "$f.tmp" "$f"
  echo "made    $f"
}

rand() { openssl rand -hex "$1"; }

# S3 credentials: MinIO's root user, read by MinIO and by bodycam (each its
# own copy, owned by its reader). A site with a MinIO of its own gives bodycam
# a user limited to its bucket instead (deploy/README.md).
s3_user=bodycam
[[ -e secrets/minio-root-user ]] && s3_user=$(cat secrets/minio-root-user)
s3_pass=$(rand 24)
[[ -e secrets/minio-root-password ]] && s3_pass=$(cat secrets/minio-root-password)
printf '%s\n' "$s3_user" | put minio-root-user $MINIO_UID
printf '%s\n' "$s3_pass" | put minio-root-password $MINIO_UID
printf '%s\n' "$s3_user" | put s3-access-key $BODYCAM_UID
printf '%s\n' "$s3_pass" | put s3-secret-key $BODYCAM_UID

# PostgreSQL: the image's entrypoint reads the password as root; bodycam gets
# the whole URL.
pg_pass=$(rand 24)
[[ -e secrets/postgres-password ]] && pg_pass=$(cat secrets/postgres-password)
printf '%s\n' "$pg_pass" | put postgres-password 0
printf 'postgres://bodycam:%s@postgres:5432/bodycam?sslmode=disable\n' "$pg_pass" | put database-url $BODYCAM_UID

# bodycam's own: the admin token, the Ed25519 signing key (PKCS#8 PEM) every
# node signs manifests with, and the key device secrets are derived from.
# All three nodes must share them.
rand 32 | put admin-token $BODYCAM_UID
if [[ ! -e secrets/signing-key ]]; then
  openssl genpkey -algorithm ed25519 | put signing-key $BODYCAM_UID
else
  echo "kept    secrets/signing-key"
fi
rand 32 | put credential-key $BODYCAM_UID

rand 16 | put grafana-admin-password $GRAFANA_UID
