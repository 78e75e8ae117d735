-- The change feed (docs/live.md): one row per sale changed in the backup, written in
-- the transaction that changes it, so every instance can follow what committed, in
-- commit order, and tell its browsers.
--
-- `seq` comes from `sale_feed_head`, whose one row every writing transaction updates
-- just before it commits: the row lock orders the commits, so a reader that has seen
-- `seq` = n has already been able to see every row below n. (An AUTO_INCREMENT id
-- could not promise that: ids are taken at insert, and commits land in any order.)
CREATE TABLE sale_feed_head (
    id   TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    seq  BIGINT UNSIGNED NOT NULL
) ENGINE = InnoDB;
INSERT INTO sale_feed_head (id, seq) VALUES (0, 0);

CREATE TABLE sale_feed (
    seq             BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    -- `bulk`: one row for a transaction that changed more sales than the feed lists
    -- one by one (an import batch, a large repair); `sales` says how many.
    kind            ENUM('created', 'updated', 'deleted', 'bulk') NOT NULL,
    sales           INT UNSIGNED NOT NULL DEFAULT 1,
    sale_id         CHAR(24) CHARACTER SET ascii COLLATE ascii_general_ci NULL,
    -- The sale as the sales table now lists it (JSON), for created and updated.
    summary         TEXT NULL,
    -- The sale's date and customer after the change and before it (NULL where there
    -- is no such side): which date ranges and which customer the change concerns.
    sale_day        DATE NULL,
    previous_day    DATE NULL,
    owner           VARCHAR(254) NULL,
    previous_owner  VARCHAR(254) NULL,
    recorded_at    DATETIME(6) NOT NULL,
    KEY ix_sale_feed_recorded (recorded_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The feed's head is the backup's change count now (`changes::generation`).
-- `backup_changes`, which counted before, stays for one release: instances of the
-- previous version still bump it while a rolling deploy replaces them (their edits
-- reach the live pages only once a page reloads). A later migration drops it.
