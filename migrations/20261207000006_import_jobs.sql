-- Imports started from the portal. A job is checked at upload, confirmed, then claimed
-- by whichever instance finds it queued (or running under a lease that ran out: its
-- instance died), so it survives the restart of the instance that ran it. Its file
-- waits in `import_files` until the job ends.
CREATE TABLE import_jobs (
    id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    created_by        BIGINT UNSIGNED NULL,
    file_name         VARCHAR(255)  NOT NULL,
    file_size         BIGINT UNSIGNED NOT NULL,
    state             ENUM('checked', 'queued', 'running', 'done', 'failed', 'cancelled') NOT NULL,
    valid             BIGINT UNSIGNED NOT NULL,
    new_sales         BIGINT UNSIGNED NOT NULL,
    present           BIGINT UNSIGNED NOT NULL,
    rejected          BIGINT UNSIGNED NOT NULL,
    -- The first rejections, as JSON: [{"at": "line 3", "reason": "…"}].
    rejections        MEDIUMTEXT    NOT NULL,
    processed         BIGINT UNSIGNED NOT NULL DEFAULT 0,
    inserted          BIGINT UNSIGNED NOT NULL DEFAULT 0,
    skipped           BIGINT UNSIGNED NOT NULL DEFAULT 0,
    -- Runs of this job: more than one when an instance died running it. A resumed run
    -- finds what its predecessors wrote already present.
    runs              INT UNSIGNED  NOT NULL DEFAULT 0,
    cancel_requested  BOOLEAN       NOT NULL DEFAULT FALSE,
    lease_owner       VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_general_ci NULL,
    lease_until       DATETIME(6)   NULL,
    error             VARCHAR(255)  NULL,
    created_at        DATETIME(6)   NOT NULL,
    started_at        DATETIME(6)   NULL,
    updated_at        DATETIME(6)   NOT NULL,
    finished_at       DATETIME(6)   NULL,
    KEY ix_import_jobs_claim (state, lease_until),
    KEY ix_import_jobs_created (created_at),
    CONSTRAINT fk_import_jobs_user FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE import_files (
    job_id   BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    content  LONGBLOB NOT NULL,
    CONSTRAINT fk_import_files_job FOREIGN KEY (job_id) REFERENCES import_jobs (id) ON DELETE CASCADE
) ENGINE = InnoDB;
