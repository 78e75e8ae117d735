-- Staff accountability: a second factor (TOTP) per account, recovery codes, the second
-- step of a login, and the acting user of every sales edit in the intent journal.

-- One TOTP secret per account (RFC 6238, SHA-1, 6 digits, 30 s). `confirmed_at` is set
-- once the user proved their authenticator has it; `last_step` is the newest time step
-- whose code was accepted, so no code is accepted twice, on any instance.
CREATE TABLE second_factors (
    user_id       BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    secret        VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    confirmed_at  DATETIME(6)  NULL,
    last_step     BIGINT UNSIGNED NULL,
    created_at    DATETIME(6)  NOT NULL,
    CONSTRAINT fk_second_factors_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

-- Single-use recovery codes, only their SHA-256 stored.
CREATE TABLE recovery_codes (
    user_id    BIGINT UNSIGNED NOT NULL,
    code_hash  CHAR(64) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    used_at    DATETIME(6) NULL,
    PRIMARY KEY (user_id, code_hash),
    CONSTRAINT fk_recovery_codes_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

-- When this login passed its second step; NULL while it has not (or needs none).
ALTER TABLE user_sessions ADD COLUMN second_factor_at DATETIME(6) NULL;

-- Who made each journaled change: a user (`actor_id`), the import, a reconciliation
-- run, or the system (recovery). NULL on rows written before this migration.
-- `result_image` is the sale as a rolled-back intent left it (recovery may restore the
-- previous content under a new version number).
ALTER TABLE sale_intents
    ADD COLUMN actor_kind ENUM('user', 'import', 'sync', 'system') NULL,
    ADD COLUMN actor_id BIGINT UNSIGNED NULL,
    ADD COLUMN result_image MEDIUMTEXT NULL;
