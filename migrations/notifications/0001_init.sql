-- notifications: messages, their recipients and receipts, push devices.

CREATE TABLE notifications (
    id             uuid PRIMARY KEY,
    text           text NOT NULL,
    -- SPIFFE ID of the workload that created it
    created_by     text NOT NULL,
    request_id     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    processed_at   timestamptz,
    UNIQUE (created_by, request_id)
);
CREATE INDEX notifications_pending ON notifications (created_at, id) WHERE processed_at IS NULL;

CREATE TABLE recipients (
    notification_id  uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    user_id          uuid NOT NULL,
    received_at      timestamptz,
    PRIMARY KEY (notification_id, user_id)
);
CREATE INDEX recipients_user ON recipients (user_id);

CREATE TABLE devices (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL,
    fcm_token      text NOT NULL UNIQUE,
    platform       smallint NOT NULL CHECK (platform BETWEEN 1 AND 3),
    registered_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_user ON devices (user_id);
