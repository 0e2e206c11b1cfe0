-- Sign-in failures are counted per claimed user name, whether or not such a
-- user exists, so that a lock-out (429) says nothing about which accounts
-- exist. The count is taken atomically before a password is checked (one
-- upsert), so concurrent guesses cannot outrun it. A row is swept once it is
-- neither locked nor recent. Names that cannot be user ids are kept as
-- '#' and their SHA-256 (a bounded key, and never a mistyped password).
CREATE TABLE sign_in_failures (
    name            TEXT PRIMARY KEY,
    attempts        BIGINT NOT NULL,
    locked_until_us BIGINT,
    last_us         BIGINT NOT NULL
);
ALTER TABLE users DROP COLUMN failed_logins;
ALTER TABLE users DROP COLUMN locked_until_us;

-- A password an admin reset for someone else must be replaced by its user at
-- the next sign-in; when and by whom an admin last set it (a new account's
-- first password, or a reset) is shown to the user.
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN password_reset_us BIGINT;
ALTER TABLE users ADD COLUMN password_reset_by TEXT NOT NULL DEFAULT '';

-- What opened a console session: '' for a password, or a keyed fingerprint
-- of the bootstrap admin token, so that changing the token ends the sessions
-- it opened. Sessions from before this column cannot tell, so they end.
ALTER TABLE sessions ADD COLUMN opened_by TEXT NOT NULL DEFAULT '';
DELETE FROM sessions;
