-- Users, console sessions and API tokens. Secrets are stored only as
-- hashes: argon2id for passwords, SHA-256 for random tokens.
CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL DEFAULT '',
    role             TEXT NOT NULL CHECK (role IN ('officer', 'supervisor', 'auditor', 'admin')),
    unit             TEXT NOT NULL DEFAULT '',
    badge_number     TEXT NOT NULL DEFAULT '',
    agency           TEXT NOT NULL DEFAULT '',
    cert_token       TEXT NOT NULL UNIQUE,
    cert_valid_us    BIGINT,
    cert_revoked     BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash    TEXT NOT NULL DEFAULT '',
    disabled         BOOLEAN NOT NULL DEFAULT FALSE,
    failed_logins    BIGINT NOT NULL DEFAULT 0,
    locked_until_us  BIGINT,
    created_us       BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    remote_addr TEXT NOT NULL DEFAULT '',
    created_us  BIGINT NOT NULL,
    expires_us  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    user_id     TEXT NOT NULL REFERENCES users (id),
    name        TEXT NOT NULL DEFAULT '',
    created_us  BIGINT NOT NULL,
    revoked_us  BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
