-- Retention classes (issue 16): a recording's categories (traffic_stop,
-- arrest, ...). Their periods are the server's configuration, not the
-- catalog's: how long a recording is kept is decided from these rows and
-- the configured classes (evidence.RetentionPolicy), so that changing a
-- class's period applies to every recording of it. Who set a category and
-- why, and what it replaced, is in the custody ledger (action
-- 'categories'); here only the current set. (0016 is another branch's.)
CREATE TABLE recording_categories (
    recording_id TEXT NOT NULL REFERENCES recordings (id),
    category     TEXT NOT NULL,
    set_by       TEXT NOT NULL,
    set_us       BIGINT NOT NULL,
    PRIMARY KEY (recording_id, category)
);
-- Retention asks, per recording, whether it is an upload marked important.
CREATE INDEX uploads_recording ON uploads (recording_id) WHERE state = 'stored';
