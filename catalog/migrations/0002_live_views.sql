-- Live viewing sessions: who watched which device live, from where, when.
CREATE TABLE live_views (
    id           TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL REFERENCES devices (id),
    recording_id TEXT NOT NULL DEFAULT '',
    username     TEXT NOT NULL,
    remote_addr  TEXT NOT NULL DEFAULT '',
    user_agent   TEXT NOT NULL DEFAULT '',
    video        TEXT NOT NULL DEFAULT '',
    audio        TEXT NOT NULL DEFAULT '',
    started_us   BIGINT NOT NULL,
    ended_us     BIGINT,
    end_reason   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX live_views_device_started ON live_views (device_id, started_us);
CREATE INDEX live_views_started ON live_views (started_us);
