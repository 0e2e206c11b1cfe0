# The two commands a newcomer needs: `make run` and `make test`. Each first
# installs what it needs and is missing (scripts/deps.sh: Debian packages when
# root, otherwise the exact apt-get line and exit 2).
GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: build run test deps-run deps-test

deps-run:
	./scripts/deps.sh run

deps-test:
	./scripts/deps.sh test

build: deps-run
	$(GO) build -o bin/bodycam ./cmd/bodycam

# The main job on the embedded default (objects in ./data/objects, SQLite
# catalog, generated admin token and keys) with one simulated recorder. The
# script dies with make (a SIGTERM to make stops everything it started).
run: build
	exec setpriv --pdeathsig TERM ./scripts/run.sh

# Every test, against the real MinIO and PostgreSQL (see README). The
# timeout is a package's: cmd/bodycam's end-to-end tests upload a 4 GiB file
# to each store, past go test's default of 10 minutes.
test: deps-test
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 60m ./...
