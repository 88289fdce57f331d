-- Throttling reserves an attempt before the password is checked, in the same
-- transaction that counts the earlier ones, so concurrent guesses cannot all
-- pass the check before any of them is recorded. The table therefore holds
-- attempts (in flight or failed), and registrations per client address too;
-- a successful login deletes its own reservation.
ALTER TABLE login_failures RENAME TO throttle_attempts;
ALTER TABLE throttle_attempts DROP CONSTRAINT login_failures_scope_check;
ALTER TABLE throttle_attempts ADD CONSTRAINT throttle_attempts_scope_check
    CHECK (scope IN ('account', 'address', 'register'));
ALTER INDEX login_failures_lookup RENAME TO throttle_attempts_lookup;
