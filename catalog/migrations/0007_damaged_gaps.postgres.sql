-- A segment whose bytes changed in the spool between being written and being
-- stored (a disk fault, or someone with access to the host) is stored as
-- found and explained by a gap of the kind 'damaged'.
ALTER TABLE gaps DROP CONSTRAINT gaps_kind_check;
ALTER TABLE gaps ADD CONSTRAINT gaps_kind_check CHECK (kind IN ('loss', 'discontinuity', 'interrupted', 'undecodable', 'damaged'));
