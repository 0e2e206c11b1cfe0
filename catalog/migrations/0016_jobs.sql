-- Durable jobs and derived media (issue 15; docs/architecture.md, "Durable
-- jobs and derived media"). A job is work on a recording (its source) of
-- one kind with parameters; (kind, source, params_hash) is unique, so
-- asking for the same work again is the same job. Workers on any node
-- claim due queued jobs, or running ones whose lease expired (a dead
-- worker's), under a lease they extend while they work. attempts counts
-- claims (a release on shutdown gives its attempt back); a failed attempt
-- waits next_us (back-off); after max_attempts the job is failed until an
-- admin runs it again. The same file for both engines.
CREATE TABLE jobs (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    source         TEXT NOT NULL REFERENCES recordings (id),
    params         TEXT NOT NULL,
    params_hash    TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts       BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts   BIGINT NOT NULL CHECK (max_attempts > 0),
    next_us        BIGINT NOT NULL,
    lease_owner    TEXT NOT NULL DEFAULT '',
    lease_until_us BIGINT NOT NULL DEFAULT 0,
    error          TEXT NOT NULL DEFAULT '',
    requested_by   TEXT NOT NULL,
    rerun_by       TEXT NOT NULL DEFAULT '',
    created_us     BIGINT NOT NULL,
    started_us     BIGINT,
    finished_us    BIGINT,
    UNIQUE (kind, source, params_hash)
);
CREATE INDEX jobs_queued ON jobs (next_us) WHERE state = 'queued';
CREATE INDEX jobs_running ON jobs (lease_until_us) WHERE state = 'running';
CREATE INDEX jobs_source ON jobs (source, id);
CREATE INDEX jobs_state ON jobs (state, id);

-- What a job made: one row per stored object (write-once, outside the
-- device chain), with its SHA-256 and its signed provenance record.
CREATE TABLE derived (
    object_key     TEXT PRIMARY KEY,
    recording_id   TEXT NOT NULL REFERENCES recordings (id),
    kind           TEXT NOT NULL,
    sha256         TEXT NOT NULL,
    size           BIGINT NOT NULL CHECK (size >= 0),
    content_type   TEXT NOT NULL DEFAULT '',
    provenance_key TEXT NOT NULL,
    job_id         TEXT NOT NULL REFERENCES jobs (id),
    created_us     BIGINT NOT NULL
);
CREATE INDEX derived_recording ON derived (recording_id, kind, created_us);
