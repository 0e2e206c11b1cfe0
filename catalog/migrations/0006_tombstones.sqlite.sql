-- Retention deletes footage in no case after its period and leaves a signed
-- tombstone as a link of the device's chain: segments gain the kind
-- 'tombstone', recordings the time their footage was deleted. SQLite cannot
-- change a CHECK constraint, so segments is rebuilt.
CREATE TABLE segments_new (
    recording_id    TEXT NOT NULL REFERENCES recordings (id),
    device_id       TEXT NOT NULL REFERENCES devices (id),
    seq             BIGINT NOT NULL CHECK (seq >= 0),
    kind            TEXT NOT NULL CHECK (kind IN ('init', 'media', 'tombstone')),
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
ALTER TABLE recordings ADD COLUMN deleted_us BIGINT;
