-- Devices, recordings, segments and gaps. Times are integer microseconds
-- since the Unix epoch (UTC) in both SQLite and PostgreSQL, so ordering and
-- range queries behave the same on each.
CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    officer_id  TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL,
    secret_salt TEXT NOT NULL DEFAULT '',
    disabled    BOOLEAN NOT NULL DEFAULT FALSE,
    created_us  BIGINT NOT NULL,
    -- head of the device's hash chain: the last link's number and hash
    chain_seq   BIGINT NOT NULL DEFAULT 0,
    chain_head  TEXT NOT NULL DEFAULT ''
);

CREATE TABLE recordings (
    id           TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL REFERENCES devices (id),
    officer_id   TEXT NOT NULL DEFAULT '',
    case_id      TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL CHECK (state IN ('live', 'complete', 'interrupted')),
    started_us   BIGINT NOT NULL,
    ended_us     BIGINT,
    end_reason   TEXT NOT NULL DEFAULT '',
    codecs       TEXT NOT NULL DEFAULT '',
    remote_addr  TEXT NOT NULL DEFAULT '',
    manifest_key TEXT NOT NULL DEFAULT ''
);
CREATE INDEX recordings_device_started ON recordings (device_id, started_us);
CREATE INDEX recordings_started ON recordings (started_us);

CREATE TABLE segments (
    recording_id    TEXT NOT NULL REFERENCES recordings (id),
    device_id       TEXT NOT NULL REFERENCES devices (id),
    seq             BIGINT NOT NULL CHECK (seq >= 0),
    kind            TEXT NOT NULL CHECK (kind IN ('init', 'media')),
    object_key      TEXT NOT NULL UNIQUE,
    size            BIGINT NOT NULL CHECK (size >= 0),
    sha256          TEXT NOT NULL,
    chain_seq       BIGINT NOT NULL CHECK (chain_seq > 0),
    prev_chain_hash TEXT NOT NULL,
    chain_hash      TEXT NOT NULL,
    started_us      BIGINT NOT NULL,
    device_time_us  BIGINT,
    duration_us     BIGINT NOT NULL CHECK (duration_us >= 0),
    keyframe        BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (recording_id, seq),
    UNIQUE (device_id, chain_seq)
);

CREATE TABLE gaps (
    recording_id TEXT NOT NULL REFERENCES recordings (id),
    kind         TEXT NOT NULL CHECK (kind IN ('loss', 'discontinuity', 'interrupted', 'undecodable')),
    start_us     BIGINT NOT NULL,
    end_us       BIGINT,
    track        TEXT NOT NULL DEFAULT '',
    detail       TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX gaps_recording ON gaps (recording_id, start_us, kind, track);
