-- roles: the users roles knows of and their role assignments.

CREATE TABLE subjects (
    user_id     uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE role_assignments (
    user_id     uuid NOT NULL REFERENCES subjects (user_id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role ~ '^[a-z][a-z0-9_-]{1,31}$'),
    -- an admin's user id, or 'system' for default roles
    granted_by  text NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role)
);
CREATE INDEX role_assignments_role ON role_assignments (role, granted_at, user_id);
CREATE INDEX role_assignments_order ON role_assignments (granted_at, user_id);
