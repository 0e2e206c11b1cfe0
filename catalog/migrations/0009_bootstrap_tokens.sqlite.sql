-- API tokens made by the bootstrap admin token's console sessions (its user
-- "admin", which has no password) outlived a change of the token. They can
-- no longer be made; those made before are revoked now, once.
UPDATE api_tokens SET revoked_us = CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
WHERE revoked_us IS NULL AND user_id IN (SELECT id FROM users WHERE role = 'admin' AND password_hash = '');
