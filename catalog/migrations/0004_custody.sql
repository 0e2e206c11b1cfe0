-- The custody ledger: append-only, hash-chained over event digests, with
-- signed checkpoints (see evidence/custody.go). custody_head holds the last
-- event's number and hash so that appends serialise on one row.
CREATE TABLE custody_events (
    seq         BIGINT PRIMARY KEY CHECK (seq > 0),
    at_us       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL DEFAULT '',
    remote      TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL,
    target_kind TEXT NOT NULL DEFAULT '',
    target_id   TEXT NOT NULL DEFAULT '',
    case_id     TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT '',
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed')),
    digest      TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX custody_case ON custody_events (case_id, seq);
CREATE INDEX custody_target ON custody_events (target_id, seq);

CREATE TABLE custody_checkpoints (
    seq       BIGINT PRIMARY KEY,
    hash      TEXT NOT NULL,
    at_us     BIGINT NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL
);

CREATE TABLE custody_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO custody_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
