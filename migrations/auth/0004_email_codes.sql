-- Email verification and password reset. An account must confirm its email
-- address before it can log in (when the server requires it); codes sent by
-- email are single-use, expire, and are stored only as an HMAC keyed with
-- the pepper (which is not in the database), so a dump of this table cannot
-- be turned back into codes.
ALTER TABLE credentials ADD COLUMN email_verified_at timestamptz;
-- Accounts made before verification existed keep logging in.
UPDATE credentials SET email_verified_at = COALESCE(activated_at, created_at)
WHERE status = 'active';

-- At most one live code per account and purpose: a new one replaces it.
CREATE TABLE email_codes (
    user_id     uuid NOT NULL REFERENCES credentials (user_id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    code_hash   bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    -- Wrong codes presented; the code is deleted at the limit.
    attempts    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, purpose)
);
CREATE INDEX email_codes_expiry ON email_codes (expires_at);

-- Emails asked for (per typed account and per client address) and codes
-- presented (per client address) are throttled like logins.
ALTER TABLE throttle_attempts DROP CONSTRAINT throttle_attempts_scope_check;
ALTER TABLE throttle_attempts ADD CONSTRAINT throttle_attempts_scope_check
    CHECK (scope IN ('account', 'address', 'register', 'email_account', 'email_address',
                     'code_address'));
