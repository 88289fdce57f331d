-- auth: credentials, sessions with refresh-token families, signing keys and
-- login throttling. Owned by the auth login role only.

CREATE TABLE credentials (
    user_id        uuid PRIMARY KEY,
    login          text NOT NULL UNIQUE,
    email          text NOT NULL UNIQUE,
    -- bcrypt over HMAC-SHA256(pepper, password); the pepper is not in the database.
    password_hash  text NOT NULL,
    -- 'pending' while registration runs in users and roles; login refused.
    status         text NOT NULL CHECK (status IN ('pending', 'active')),
    -- kept so that a retried registration can finish the same way
    first_name     text NOT NULL,
    last_name      text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    activated_at   timestamptz
);
CREATE INDEX credentials_pending ON credentials (created_at) WHERE status = 'pending';

CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES credentials (user_id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text
);
CREATE INDEX sessions_user ON sessions (user_id);

-- One row per refresh token ever issued: the session's family.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,           -- SHA-256 of the token; the token is never stored
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid             text PRIMARY KEY,
    algorithm       text NOT NULL,
    -- PKCS#8 private key sealed with ChaCha20-Poly1305 under a key from the
    -- configuration (never stored here).
    sealed_private  bytea NOT NULL,
    nonce           bytea NOT NULL,
    public_jwk      jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- published from created_at, signs from signs_from
    signs_from      timestamptz NOT NULL
);

CREATE TABLE login_failures (
    id     bigserial PRIMARY KEY,
    scope  text NOT NULL CHECK (scope IN ('account', 'address')),
    key    text NOT NULL,
    at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_lookup ON login_failures (scope, key, at);
