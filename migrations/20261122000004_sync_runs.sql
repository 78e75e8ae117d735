-- Reconciliation runs (`server sync`, the "Run sync" button, the periodic job).
--
-- One row per run, written when it starts and updated as it goes, so the UI can show
-- progress and the last report. A process that dies mid-run leaves its row `running`;
-- the next run marks it `interrupted` (runs never overlap: they hold a MySQL named lock).
CREATE TABLE sync_runs (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- cli, schedule (the periodic job) or manual (the button)
    trigger_kind ENUM('cli', 'schedule', 'manual') NOT NULL,
    started_by   BIGINT UNSIGNED NULL,
    -- A dry run only counts the drift; it changes nothing.
    dry_run      BOOLEAN      NOT NULL,
    status       ENUM('running', 'completed', 'failed', 'interrupted') NOT NULL,
    -- MongoDB's document count when the run started, for progress.
    expected     BIGINT UNSIGNED NOT NULL DEFAULT 0,
    scanned      BIGINT UNSIGNED NOT NULL DEFAULT 0,
    -- Differences found and (unless dry_run) repaired in MySQL.
    created      BIGINT UNSIGNED NOT NULL DEFAULT 0,
    updated      BIGINT UNSIGNED NOT NULL DEFAULT 0,
    deleted      BIGINT UNSIGNED NOT NULL DEFAULT 0,
    -- Differences left for the next run because the sale was edited during this one.
    skipped      BIGINT UNSIGNED NOT NULL DEFAULT 0,
    -- MongoDB documents that are not valid sales: reported, never copied or deleted.
    invalid      BIGINT UNSIGNED NOT NULL DEFAULT 0,
    error        VARCHAR(255) NULL,
    started_at   DATETIME(6)  NOT NULL,
    finished_at  DATETIME(6)  NULL,
    KEY ix_sync_runs_status (status, id),
    CONSTRAINT fk_sync_runs_user FOREIGN KEY (started_by) REFERENCES users (id) ON DELETE SET NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- When each backup row was last written (by the dual writer, an import or a sync), in
-- UTC. A sync treats a MySQL row that its MongoDB scan did not see as extra only if the
-- row is older than the run: a newer one belongs to a sale created after the scan
-- passed its place, and is left for the next run to check.
ALTER TABLE sales ADD COLUMN backed_up_at DATETIME(6) NOT NULL DEFAULT '2000-01-01 00:00:00';
