-- Accounts, sessions and the authentication audit trail.
--
-- All times are UTC: sqlx sets time_zone = '+00:00' on every connection, so
-- CURRENT_TIMESTAMP(6) defaults are UTC too. Written to run on MySQL 8 and MariaDB 10.11.
--
-- Columns the app reads back as text use case-insensitive collations: sqlx decodes a
-- VARCHAR with a binary collation as bytes. Binary collations remain only on columns
-- that are compared but never read (tower-sessions' case-sensitive ids).

-- One row per person who can log in. `username_key` is the lower-cased username: the
-- unique index on it makes "Alice" and "alice" the same account, while `username`
-- keeps the spelling the user chose. Emails are stored lower-cased for the same reason.
CREATE TABLE users (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username       VARCHAR(32)  NOT NULL,
    username_key   VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    email          VARCHAR(254) NOT NULL,
    -- argon2id PHC string: algorithm, parameters, salt and hash in one field.
    password_hash  VARCHAR(255) NOT NULL,
    role           ENUM('customer', 'technical_worker', 'senior_management') NOT NULL,
    -- technical workers and senior managers start `pending` until a senior manager approves them.
    status         ENUM('active', 'pending', 'disabled') NOT NULL,
    created_at     DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    last_login_at  DATETIME(6)  NULL,
    CONSTRAINT uq_users_username_key UNIQUE (username_key),
    CONSTRAINT uq_users_email UNIQUE (email),
    KEY ix_users_status (status, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- tower-sessions' MySQL store keeps its records here (same columns its own
-- migration would create, but inside our database instead of a separate schema).
CREATE TABLE sessions (
    id           CHAR(22)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    data         BLOB         NOT NULL,
    expiry_date  TIMESTAMP(6) NOT NULL,
    KEY ix_sessions_expiry (expiry_date)
) ENGINE = InnoDB;

-- Which user owns which login. The session record carries `id` (a random key that
-- survives session-id cycling); a request is authenticated only while its row exists,
-- so deleting rows here is how sessions are revoked. `last_seen_at` drives the idle
-- timeout, `created_at` the absolute one.
CREATE TABLE user_sessions (
    id            CHAR(43)     CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL PRIMARY KEY,
    user_id       BIGINT UNSIGNED NOT NULL,
    created_at    DATETIME(6)  NOT NULL,
    last_seen_at  DATETIME(6)  NOT NULL,
    ip            VARCHAR(45)  NULL,
    user_agent    VARCHAR(255) NULL,
    KEY ix_user_sessions_user (user_id, created_at),
    CONSTRAINT fk_user_sessions_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Failed logins within the throttling window, by account and by client address.
-- Rows older than the window are deleted as new failures arrive.
CREATE TABLE login_failures (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at            DATETIME(6)  NOT NULL,
    username_key  VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
    ip            VARCHAR(45)  NOT NULL,
    KEY ix_login_failures_user (username_key, at),
    KEY ix_login_failures_ip (ip, at),
    KEY ix_login_failures_at (at)
) ENGINE = InnoDB;

-- One-time password-reset links. Only the SHA-256 of the token is stored, so a
-- leaked table cannot be turned into working links.
CREATE TABLE password_resets (
    token_hash  BINARY(32)      NOT NULL PRIMARY KEY,
    user_id     BIGINT UNSIGNED NOT NULL,
    created_by  BIGINT UNSIGNED NOT NULL,
    created_at  DATETIME(6)     NOT NULL,
    expires_at  DATETIME(6)     NOT NULL,
    used_at     DATETIME(6)     NULL,
    KEY ix_password_resets_user (user_id),
    CONSTRAINT fk_password_resets_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_password_resets_creator FOREIGN KEY (created_by) REFERENCES users (id)
) ENGINE = InnoDB;

-- Who did what, when and from where: logins, failures, lockouts, approvals,
-- role changes, resets. Never updated, only appended.
CREATE TABLE auth_audit (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at         DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    event      VARCHAR(32)  NOT NULL,
    user_id    BIGINT UNSIGNED NULL,
    -- what was typed, for failures against unknown accounts
    username   VARCHAR(64)  NULL,
    actor_id   BIGINT UNSIGNED NULL,
    ip         VARCHAR(45)  NULL,
    detail     VARCHAR(255) NULL,
    KEY ix_auth_audit_at (at),
    KEY ix_auth_audit_user (user_id, at),
    CONSTRAINT fk_auth_audit_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT fk_auth_audit_actor FOREIGN KEY (actor_id) REFERENCES users (id) ON DELETE SET NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
