-- Devices, recordings and segments. Times are integer microseconds since the
-- Unix epoch (UTC) in both SQLite and PostgreSQL, so ordering and range
-- queries behave the same on each.
CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    officer_id  TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL,
    disabled    BOOLEAN NOT NULL DEFAULT FALSE,
    created_us  BIGINT NOT NULL
);

CREATE TABLE recordings (
    id         TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices (id),
    officer_id TEXT NOT NULL DEFAULT '',
    case_id    TEXT NOT NULL DEFAULT '',
    state      TEXT NOT NULL CHECK (state IN ('live', 'complete', 'interrupted')),
    started_us BIGINT NOT NULL,
    ended_us   BIGINT
);
CREATE INDEX recordings_device_started ON recordings (device_id, started_us);
CREATE INDEX recordings_started ON recordings (started_us);

CREATE TABLE segments (
    recording_id TEXT NOT NULL REFERENCES recordings (id),
    seq          BIGINT NOT NULL CHECK (seq >= 0),
    kind         TEXT NOT NULL CHECK (kind IN ('init', 'media')),
    object_key   TEXT NOT NULL UNIQUE,
    size         BIGINT NOT NULL CHECK (size >= 0),
    sha256       TEXT NOT NULL,
    chain_hash   TEXT NOT NULL,
    started_us   BIGINT NOT NULL,
    duration_us  BIGINT NOT NULL CHECK (duration_us >= 0),
    PRIMARY KEY (recording_id, seq)
);
