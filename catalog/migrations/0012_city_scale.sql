-- A city's catalog (issue 13; docs/architecture.md, "The catalog at a
-- city's scale"): reads must cost what they return, not what the catalog
-- holds.
--
-- recordings.segment_count: a recording's stored segments (tombstones not
-- counted), kept by AppendSegment under the row lock it already takes.
-- Counting them on every read walked every segment of every recording
-- listed: some 450 heap pages per half-hour recording of 4 s segments.
ALTER TABLE recordings ADD COLUMN segment_count BIGINT NOT NULL DEFAULT 0;
UPDATE recordings SET segment_count = (SELECT COUNT(*) FROM segments s
    WHERE s.recording_id = recordings.id AND s.kind <> 'tombstone');

-- devices.longest_recording_us: the longest a finished recording of the
-- device lasted (ended - started, at least 0), kept wherever a recording's
-- end is set. A recording that overlaps [from, to) then started at or after
-- from - longest, or is still open: the recordings of a time window are a
-- bounded range of (device_id, started_us) plus the open ones, where the
-- scan used to run back through the device's whole history.
ALTER TABLE devices ADD COLUMN longest_recording_us BIGINT NOT NULL DEFAULT 0;
UPDATE devices SET longest_recording_us = COALESCE((SELECT MAX(CASE WHEN r.ended_us > r.started_us
    THEN r.ended_us - r.started_us ELSE 0 END) FROM recordings r WHERE r.device_id = devices.id AND r.ended_us IS NOT NULL), 0);
CREATE INDEX devices_longest_recording ON devices (longest_recording_us);
CREATE INDEX recordings_device_open ON recordings (device_id, started_us) WHERE ended_us IS NULL;
CREATE INDEX recordings_open ON recordings (started_us) WHERE ended_us IS NULL;

-- Retention's candidates, oldest end first, among recordings not yet
-- deleted: without it each pass sorted every recording ever kept (53
-- million a year in a city); a deleted recording leaves this index.
CREATE INDEX recordings_retention ON recordings (ended_us) WHERE deleted_us IS NULL;
