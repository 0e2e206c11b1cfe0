-- Events for other systems (issue 11), written in the same transaction as
-- the change they tell of (an outbox). pos is the order rows were written
-- in; seq, set by the one relay, is the delivery order every consumer (the
-- Redis stream, each webhook) follows with a cursor of its own. Writers on
-- PostgreSQL take pos before they commit, so a smaller pos can become
-- visible after a larger one: consumers read seq, which is given only to
-- committed rows, in one place, never to a row behind one it gave already.
-- The same file for both engines but for the identity columns.
CREATE TABLE outbox (
    pos          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    device_id    TEXT NOT NULL DEFAULT '',
    case_id      TEXT NOT NULL DEFAULT '',
    occurred_us  BIGINT NOT NULL,
    payload      TEXT NOT NULL,
    created_us   BIGINT NOT NULL,
    seq          BIGINT UNIQUE,
    sequenced_us BIGINT
);
CREATE INDEX outbox_unsequenced ON outbox (pos) WHERE seq IS NULL;
CREATE INDEX outbox_created ON outbox (created_us);

-- The last seq given.
CREATE TABLE outbox_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO outbox_head (id, seq) VALUES (1, 0);

-- How far each consumer has got: every event with seq <= cursors.seq is
-- delivered (or, for a webhook, dead-lettered).
CREATE TABLE outbox_cursors (
    name       TEXT PRIMARY KEY,
    seq        BIGINT NOT NULL,
    updated_us BIGINT NOT NULL
);

-- Events a webhook gave up on, kept whole (the outbox is pruned) until an
-- admin queues one again.
CREATE TABLE webhook_dead_letters (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook          TEXT NOT NULL,
    url              TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    device_id        TEXT NOT NULL DEFAULT '',
    case_id          TEXT NOT NULL DEFAULT '',
    occurred_us      BIGINT NOT NULL,
    payload          TEXT NOT NULL,
    created_us       BIGINT NOT NULL,
    attempts         BIGINT NOT NULL,
    first_attempt_us BIGINT NOT NULL,
    last_attempt_us  BIGINT NOT NULL,
    last_error       TEXT NOT NULL DEFAULT '',
    dead_us          BIGINT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('dead', 'queued', 'delivered')),
    requeued_by      TEXT NOT NULL DEFAULT '',
    requeued_us      BIGINT,
    delivered_us     BIGINT,
    UNIQUE (webhook, event_id)
);
CREATE INDEX webhook_dead_letters_state ON webhook_dead_letters (webhook, state, id);
