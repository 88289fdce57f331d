-- users: profiles. Login and email are copies owned by auth.

CREATE TABLE profiles (
    id            uuid PRIMARY KEY,
    login         text NOT NULL,
    email         text NOT NULL,
    first_name    text NOT NULL,
    last_name     text NOT NULL,
    display_name  text NOT NULL DEFAULT '',
    locale        text NOT NULL DEFAULT '',
    time_zone     text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
