# MinIO for compose.yaml, built from the same module version the project's
# storage tests run against (.ci/run), as a non-root user. MinIO has published
# no community images since October 2025 (source only); a site with its own
# MinIO image sets MINIO_IMAGE instead.
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
ARG MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath github.com/minio/minio@${MINIO_VERSION}

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65533 minio \
 && useradd --system --uid 65533 --gid 65533 --home-dir /var/lib/minio --shell /usr/sbin/nologin minio \
 && install -d -o 65533 -g 65533 -m 0700 /var/lib/minio /data1 /data2 /data3 /data4
COPY --from=build /out/minio /usr/local/bin/minio
USER 65533:65533
ENV HOME=/var/lib/minio
EXPOSE 9000 9001
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/minio"]
