-- Sharing with prosecutors and defence (issue 16): a case's chosen
-- recordings shared with a named recipient through a link and a one-time
-- code. The code and the recipient's session are kept as SHA-256 only.
-- Downloads are counted here and each has its signed receipt; making,
-- opening, downloading and revoking are custody events besides.
CREATE TABLE shares (
    id              TEXT PRIMARY KEY,
    case_id         TEXT NOT NULL REFERENCES cases (id),
    recipient_name  TEXT NOT NULL,
    recipient_org   TEXT NOT NULL,
    recipient_email TEXT NOT NULL DEFAULT '',
    purpose         TEXT NOT NULL,
    recordings      TEXT NOT NULL,
    copies          TEXT NOT NULL DEFAULT '',
    max_downloads   INTEGER NOT NULL,
    downloads       INTEGER NOT NULL DEFAULT 0,
    created_by      TEXT NOT NULL,
    created_us      BIGINT NOT NULL,
    expires_us      BIGINT NOT NULL,
    code_hash       TEXT NOT NULL,
    code_used_us    BIGINT NOT NULL DEFAULT 0,
    session_hash    TEXT NOT NULL DEFAULT '',
    failed_codes    INTEGER NOT NULL DEFAULT 0,
    revoked_by      TEXT NOT NULL DEFAULT '',
    revoked_us      BIGINT NOT NULL DEFAULT 0,
    revoked_reason  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX shares_case ON shares (case_id, created_us);

CREATE TABLE share_receipts (
    id        TEXT PRIMARY KEY,
    share_id  TEXT NOT NULL REFERENCES shares (id),
    download  INTEGER NOT NULL,
    at_us     BIGINT NOT NULL,
    body      TEXT NOT NULL,
    signature TEXT NOT NULL -- base64
);
CREATE INDEX share_receipts_share ON share_receipts (share_id, download);
