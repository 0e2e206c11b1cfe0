-- A segment whose bytes changed in the spool between being written and being
-- stored (a disk fault, or someone with access to the host) is stored as
-- found and explained by a gap of the kind 'damaged'. SQLite cannot change a
-- CHECK constraint, so gaps is rebuilt.
CREATE TABLE gaps_new (
    recording_id TEXT NOT NULL REFERENCES recordings (id),
    kind         TEXT NOT NULL CHECK (kind IN ('loss', 'discontinuity', 'interrupted', 'undecodable', 'damaged')),
    start_us     BIGINT NOT NULL,
    end_us       BIGINT,
    track        TEXT NOT NULL DEFAULT '',
    detail       TEXT NOT NULL DEFAULT ''
);
INSERT INTO gaps_new SELECT * FROM gaps;
DROP TABLE gaps;
ALTER TABLE gaps_new RENAME TO gaps;
CREATE UNIQUE INDEX gaps_recording ON gaps (recording_id, start_us, kind, track);
