-- A delivery's status as a Postgres enum, mapped one to one by the Rust
-- type interlock_notifications::delivery::Status (sqlx::Type).
--
-- Why an enum rather than text with a CHECK: the column's type then names
-- the closed set, sqlx derives the mapping for values and arrays (the claim
-- and completion queries bind the final statuses as delivery_status[]) and
-- checks the type name when it decodes, so a value the Rust type does not
-- know cannot be read as one. Which statuses are final is NOT stored here:
-- only the Rust type decides it, and the queries are given that set.
--
-- Adding a status later: ALTER TYPE delivery_status ADD VALUE '...' in a
-- migration of its own (Postgres does not let the transaction that adds a
-- value use it), together with the new Rust variant.

CREATE TYPE delivery_status AS ENUM ('delivered', 'unregistered', 'failed_permanent', 'failed_transient');

ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ALTER COLUMN status TYPE delivery_status USING status::delivery_status;
