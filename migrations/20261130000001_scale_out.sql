-- Many instances, one truth (docs/dual-write.md, "Several instances").
--
-- Rollout: stop every instance running an earlier version before this runs (they do
-- not honour leases). This migration fails if a sale has two open intents, which only
-- the earlier version could leave; let its recovery settle them first.

-- An open intent (pending or needs_repair) is its sale's lease: at most one per sale
-- (the unique key on the generated `open_sale_id`), held by `lease_owner` until
-- `lease_until` on the database's clock. A `repair` intent journals a reconciliation
-- run's change to the backup. (RTRIM: MariaDB refuses a stored CHAR column's value in a
-- generated column, since its padding depends on the SQL mode.)
ALTER TABLE sale_intents
    MODIFY op ENUM('create', 'update', 'delete', 'repair') NOT NULL,
    ADD COLUMN lease_owner VARCHAR(64) CHARACTER SET ascii COLLATE ascii_general_ci NULL AFTER state,
    ADD COLUMN lease_until DATETIME(6) NULL AFTER lease_owner,
    ADD COLUMN open_sale_id VARCHAR(24) CHARACTER SET ascii COLLATE ascii_general_ci
        AS (IF(state IN ('pending', 'needs_repair'), RTRIM(sale_id), NULL)) STORED,
    ADD CONSTRAINT uq_sale_intents_open UNIQUE (open_sale_id),
    ADD KEY ix_sale_intents_lease (state, lease_until),
    ADD KEY ix_sale_intents_owner (lease_owner);

-- Counts the commits that change the backup tables, in the same transaction, so every
-- instance can tell that a cached figure is out of date. Sixteen slots, so concurrent
-- commits rarely wait on one row lock.
CREATE TABLE backup_changes (
    slot  TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    n     BIGINT UNSIGNED NOT NULL
) ENGINE = InnoDB;
INSERT INTO backup_changes (slot, n) VALUES
    (0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0),
    (8, 0), (9, 0), (10, 0), (11, 0), (12, 0), (13, 0), (14, 0), (15, 0);

-- Jobs that run in one place at a time across instances (`sales_sync`), and the turn
-- of a periodic one (`sales_sync_schedule`: `lease_until` is when the next turn is
-- due). `token` grows with every taking: a holder whose token is outdated stops.
CREATE TABLE job_leases (
    name         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL PRIMARY KEY,
    owner        VARCHAR(64) CHARACTER SET ascii COLLATE ascii_general_ci NULL,
    token        BIGINT UNSIGNED NOT NULL DEFAULT 0,
    lease_until  DATETIME(6) NULL
) ENGINE = InnoDB;
INSERT INTO job_leases (name) VALUES ('sales_sync'), ('sales_sync_schedule');
