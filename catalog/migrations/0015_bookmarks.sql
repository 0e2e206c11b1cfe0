-- Bookmarks (issue 15): moments of a recording marked for review, with a
-- note and who set them. Never edited: removed (who, when, why: kept) and
-- set again. Setting and removing are custody events besides.
CREATE TABLE bookmarks (
    id             TEXT PRIMARY KEY,
    recording_id   TEXT NOT NULL REFERENCES recordings (id),
    at_us          BIGINT NOT NULL,
    note           TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_us     BIGINT NOT NULL,
    removed_by     TEXT NOT NULL DEFAULT '',
    removed_us     BIGINT NOT NULL DEFAULT 0,
    removed_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX bookmarks_recording ON bookmarks (recording_id, at_us);
