# The two commands a newcomer needs: `make run` and `make test`.
GO ?= go

.PHONY: build run test

build:
	$(GO) build -o bin/bodycam ./cmd/bodycam

# The main job on the embedded default (objects in ./data/objects, SQLite
# catalog, generated admin token and keys) with one simulated recorder.
run: build
	./scripts/run.sh

# Every test, against the real MinIO and PostgreSQL (see README).
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
