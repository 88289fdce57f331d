-- Push delivery: leases for sender replicas and per-device outcomes.

ALTER TABLE notifications
    ADD COLUMN lease_owner  text,
    ADD COLUMN lease_until  timestamptz,
    -- e.g. 'delivered to 2 of 3 devices', set when processed
    ADD COLUMN outcome      text;

CREATE TABLE deliveries (
    notification_id  uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    -- not a foreign key: the outcome outlives a device removed later
    device_id        uuid NOT NULL,
    user_id          uuid NOT NULL,
    token_hint       text NOT NULL,
    status           text NOT NULL CHECK (status IN ('delivered', 'unregistered', 'failed_permanent', 'failed_transient')),
    error_code       text NOT NULL DEFAULT '',
    attempts         integer NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, device_id)
);
