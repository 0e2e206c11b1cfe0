-- The supervision dashboard (issue 16; catalog/stats.go) counts the
-- ledger's refusals and failed verifications of a period. They are few
-- among its events; without this index each count read the whole ledger.
-- (0018 and 0019 are other branches'.)
CREATE INDEX custody_not_ok ON custody_events (at_us) WHERE outcome <> 'ok';
