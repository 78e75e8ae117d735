-- The dual-write journal. Every sales edit first records an intent here, then changes
-- MongoDB (the primary), then applies the change to the backup tables and marks the
-- intent done in one MySQL transaction. An intent that is not `done` or `failed` is
-- work for the recovery worker; docs/dual-write.md has the full protocol.
--
-- The images are the sale as JSON before and after the edit. They are a recovery aid,
-- not reporting data (reports read the `sales` tables).
CREATE TABLE sale_intents (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- Sent by the client with each edit; a retried submission finds its earlier intent.
    idempotency_key  VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NULL,
    op               ENUM('create', 'update', 'delete') NOT NULL,
    sale_id          CHAR(24)     CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    before_image     MEDIUMTEXT   NULL,
    after_image      MEDIUMTEXT   NULL,
    -- pending: recorded, outcome unknown (in flight, or the process died)
    -- done: both stores changed; failed: neither store changed
    -- needs_repair: MongoDB changed, MySQL did not, and undoing MongoDB failed too
    state            ENUM('pending', 'done', 'failed', 'needs_repair') NOT NULL,
    error            VARCHAR(255) NULL,
    attempts         INT UNSIGNED NOT NULL DEFAULT 0,
    next_attempt_at  DATETIME(6)  NULL,
    created_at       DATETIME(6)  NOT NULL,
    updated_at       DATETIME(6)  NOT NULL,
    CONSTRAINT uq_sale_intents_key UNIQUE (idempotency_key),
    KEY ix_sale_intents_state (state, next_attempt_at),
    KEY ix_sale_intents_sale (sale_id, id),
    KEY ix_sale_intents_failures (state, updated_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
