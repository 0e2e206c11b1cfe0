-- Dock upload (issue 14; docs/architecture.md, "Uploads"): segments gain
-- the kind 'original' (an uploaded file, stored as it came), users the role
-- 'dock' (a workstation's account).
ALTER TABLE segments DROP CONSTRAINT segments_kind_check;
ALTER TABLE segments ADD CONSTRAINT segments_kind_check CHECK (kind IN ('init', 'media', 'tombstone', 'original'));
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('officer', 'supervisor', 'auditor', 'admin', 'dock'));

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
