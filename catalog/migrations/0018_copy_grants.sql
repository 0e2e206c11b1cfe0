-- Approval before copying (issue 16): a request to copy evidence out (a
-- recording's media or a case's export), who asked and why, and its
-- decision. A grant is counted (uses_left, taken one at a time by a
-- conditional UPDATE) and time-limited (expires_us). Never deleted; every
-- step is a custody event besides.
CREATE TABLE copy_requests (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    reason        TEXT NOT NULL,
    uses          INTEGER NOT NULL,
    uses_left     INTEGER NOT NULL,
    requested_by  TEXT NOT NULL,
    requested_us  BIGINT NOT NULL,
    state         TEXT NOT NULL DEFAULT 'pending',
    decided_by    TEXT NOT NULL DEFAULT '',
    decided_us    BIGINT NOT NULL DEFAULT 0,
    decision_note TEXT NOT NULL DEFAULT '',
    expires_us    BIGINT NOT NULL DEFAULT 0,
    last_used_us  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX copy_requests_state ON copy_requests (state, requested_us);
CREATE INDEX copy_requests_requester ON copy_requests (requested_by, requested_us);
