-- The supervision dashboard (issue 16; catalog/stats.go) counts the
-- ledger's refusals and failed verifications of a period. They are few
-- among its events; without this index each count read the whole ledger.
CREATE INDEX custody_not_ok ON custody_events (at_us) WHERE outcome <> 'ok';
-- A unit's or an officer's dashboard reads their recordings of the period,
-- not the whole city's.
CREATE INDEX recordings_officer_started ON recordings (officer_id, started_us);
