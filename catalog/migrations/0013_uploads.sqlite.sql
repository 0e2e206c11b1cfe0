-- Dock upload (issue 14; docs/architecture.md, "Uploads"): segments gain
-- the kind 'original' (an uploaded file, stored as it came), users the role
-- 'dock' (a workstation's account). SQLite cannot change a CHECK
-- constraint, so both tables are rebuilt. users is referenced by other
-- tables, so this migration runs with foreign keys off (SQLite's own
-- procedure for rebuilding a table) and checks those tables before it
-- commits:
-- bodycam: foreign_keys off; check sessions api_tokens cases case_members
CREATE TABLE segments_new (
    recording_id    TEXT NOT NULL REFERENCES recordings (id),
    device_id       TEXT NOT NULL REFERENCES devices (id),
    seq             BIGINT NOT NULL CHECK (seq >= 0),
    kind            TEXT NOT NULL CHECK (kind IN ('init', 'media', 'tombstone', 'original')),
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
INSERT INTO segments_new SELECT * FROM segments;
DROP TABLE segments;
ALTER TABLE segments_new RENAME TO segments;

CREATE TABLE users_new (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL DEFAULT '',
    role                 TEXT NOT NULL CHECK (role IN ('officer', 'supervisor', 'auditor', 'admin', 'dock')),
    unit                 TEXT NOT NULL DEFAULT '',
    badge_number         TEXT NOT NULL DEFAULT '',
    agency               TEXT NOT NULL DEFAULT '',
    cert_token           TEXT NOT NULL UNIQUE,
    cert_valid_us        BIGINT,
    cert_revoked         BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash        TEXT NOT NULL DEFAULT '',
    disabled             BOOLEAN NOT NULL DEFAULT FALSE,
    created_us           BIGINT NOT NULL,
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    password_reset_us    BIGINT,
    password_reset_by    TEXT NOT NULL DEFAULT ''
);
INSERT INTO users_new (id, name, role, unit, badge_number, agency, cert_token, cert_valid_us, cert_revoked,
    password_hash, disabled, created_us, must_change_password, password_reset_us, password_reset_by)
    SELECT id, name, role, unit, badge_number, agency, cert_token, cert_valid_us, cert_revoked,
    password_hash, disabled, created_us, must_change_password, password_reset_us, password_reset_by FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

-- Recordings say how they came in: 'stream' (RTSP, cut into fMP4 segments)
-- or 'upload' (a recorder's own file, uploaded whole through a dock; its one
-- segment, kind 'original', is the file's exact bytes).
ALTER TABLE recordings ADD COLUMN kind TEXT NOT NULL DEFAULT 'stream' CHECK (kind IN ('stream', 'upload'));

-- One row per upload (a tus upload: one file of one device, sent by a
-- dock). sha256 is what the dock declared, received_sha256 what the server
-- hashed. A device has at most one stored upload of a given file: storing
-- the same bytes again is the same recording (StoreUpload).
CREATE TABLE uploads (
    id              TEXT PRIMARY KEY,
    dock            TEXT NOT NULL,
    device_id       TEXT NOT NULL REFERENCES devices (id),
    officer_id      TEXT NOT NULL DEFAULT '',
    file_name       TEXT NOT NULL,
    size            BIGINT NOT NULL CHECK (size >= 0),
    sha256          TEXT NOT NULL,
    received_sha256 TEXT NOT NULL DEFAULT '',
    important       BOOLEAN NOT NULL DEFAULT FALSE,
    started_us      BIGINT,
    ended_us        BIGINT,
    time_source     TEXT NOT NULL DEFAULT '',
    gps             TEXT NOT NULL DEFAULT '',
    state           TEXT NOT NULL CHECK (state IN ('receiving', 'finishing', 'stored', 'refused', 'abandoned')),
    reason          TEXT NOT NULL DEFAULT '',
    recording_id    TEXT REFERENCES recordings (id),
    remote_addr     TEXT NOT NULL DEFAULT '',
    created_us      BIGINT NOT NULL,
    updated_us      BIGINT NOT NULL
);
CREATE UNIQUE INDEX uploads_stored ON uploads (device_id, sha256) WHERE state = 'stored';
CREATE INDEX uploads_dock ON uploads (dock, created_us);
CREATE INDEX uploads_device ON uploads (device_id, created_us);
CREATE INDEX uploads_created ON uploads (created_us);
CREATE INDEX uploads_state ON uploads (state, updated_us);

-- Recordings of one event: a device's live stream and its own file of the
-- same time span, uploaded later (kind 'same_event'). Symmetric, so each
-- pair is stored once, a < b.
CREATE TABLE recording_links (
    a          TEXT NOT NULL REFERENCES recordings (id),
    b          TEXT NOT NULL REFERENCES recordings (id),
    kind       TEXT NOT NULL CHECK (kind IN ('same_event')),
    created_us BIGINT NOT NULL,
    PRIMARY KEY (a, b, kind),
    CHECK (a < b)
);
CREATE INDEX recording_links_b ON recording_links (b, kind);
