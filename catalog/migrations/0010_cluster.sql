-- Several nodes on one catalog (issue 11). A recording names the node that
-- records it and carries the fence of the device lease that node held when
-- it began; devices.fence is the highest fence seen. AppendSegment refuses
-- a segment of an older fence recorded after a newer grant (see
-- catalog.ErrStaleFence). reaped_us is set when the cluster's reaper ended
-- a live recording because its node stopped answering, and cleared when the
-- owning node finishes it after all. Live views name the node serving them.
-- signing_keys holds every node's public keys, for verification anywhere.
ALTER TABLE recordings ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
ALTER TABLE recordings ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
ALTER TABLE recordings ADD COLUMN reaped_us BIGINT;
ALTER TABLE devices ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
ALTER TABLE live_views ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
CREATE INDEX recordings_device_fence ON recordings (device_id, fence);
CREATE INDEX recordings_node_state ON recordings (node_id, state);
CREATE INDEX live_views_node ON live_views (node_id, ended_us);

CREATE TABLE signing_keys (
    id         TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    node_id    TEXT NOT NULL DEFAULT '',
    created_us BIGINT NOT NULL
);
