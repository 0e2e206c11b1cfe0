-- Cases, who is on them, their workflow's steps, and the footage linked to
-- them. Nothing here is ever deleted: a removed link keeps who removed it
-- and why.
CREATE TABLE cases (
    id         TEXT PRIMARY KEY,
    title      TEXT NOT NULL DEFAULT '',
    state      TEXT NOT NULL CHECK (state IN ('filed', 'investigating', 'under_review', 'decided', 'closed', 'archived')),
    officer    TEXT NOT NULL REFERENCES users (id),
    unit       TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL
);

CREATE TABLE case_members (
    case_id TEXT NOT NULL REFERENCES cases (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (case_id, user_id)
);
CREATE INDEX case_members_user ON case_members (user_id);

CREATE TABLE case_transitions (
    case_id    TEXT NOT NULL REFERENCES cases (id),
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    by_user    TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    at_us      BIGINT NOT NULL
);
CREATE INDEX case_transitions_case ON case_transitions (case_id, at_us);

CREATE TABLE evidence_links (
    id            TEXT PRIMARY KEY,
    case_id       TEXT NOT NULL REFERENCES cases (id),
    recording_id  TEXT NOT NULL REFERENCES recordings (id),
    from_us       BIGINT,
    to_us         BIGINT,
    linked_by     TEXT NOT NULL,
    linked_us     BIGINT NOT NULL,
    note          TEXT NOT NULL DEFAULT '',
    unlinked_by   TEXT NOT NULL DEFAULT '',
    unlinked_us   BIGINT,
    unlink_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX evidence_links_case ON evidence_links (case_id);
CREATE INDEX evidence_links_recording ON evidence_links (recording_id);
