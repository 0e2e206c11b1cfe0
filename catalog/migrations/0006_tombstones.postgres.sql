-- Retention deletes footage in no case after its period and leaves a signed
-- tombstone as a link of the device's chain: segments gain the kind
-- 'tombstone', recordings the time their footage was deleted.
ALTER TABLE segments DROP CONSTRAINT segments_kind_check;
ALTER TABLE segments ADD CONSTRAINT segments_kind_check CHECK (kind IN ('init', 'media', 'tombstone'));
ALTER TABLE recordings ADD COLUMN deleted_us BIGINT;
