-- Verified email, mail sent from a queue, throttling that holds under parallel
-- requests, and trusted browsers (README, "Accounts and security").

-- A customer's purchases are shown only once the address is proven theirs. Staff were
-- approved by a senior manager who knew them: their addresses count as verified.
-- Customers registered before confirm theirs from their profile.
ALTER TABLE users ADD COLUMN email_verified_at DATETIME(6) NULL AFTER email;
UPDATE users SET email_verified_at = created_at WHERE role <> 'customer';

-- One-time links sent by mail: confirming an address (the address is the one the link
-- was sent to, which becomes the account's when confirmed) and resetting a password.
-- Only the SHA-256 of the token is stored. Replaces `password_resets` (its links expire
-- within the hour anyway).
CREATE TABLE email_tokens (
    token_hash  BINARY(32)      NOT NULL PRIMARY KEY,
    user_id     BIGINT UNSIGNED NOT NULL,
    purpose     ENUM('verify_email', 'reset_password') NOT NULL,
    email       VARCHAR(254)    NOT NULL,
    created_by  BIGINT UNSIGNED NULL,
    created_at  DATETIME(6)     NOT NULL,
    expires_at  DATETIME(6)     NOT NULL,
    used_at     DATETIME(6)     NULL,
    KEY ix_email_tokens_user (user_id, purpose, used_at),
    CONSTRAINT fk_email_tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_email_tokens_creator FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
DROP TABLE password_resets;

-- Outgoing mail. A request only adds a row; a sender in every instance claims due
-- messages (one at a time per message), sends them over SMTP, and retries with backoff,
-- so a down mail server delays mail and loses none.
CREATE TABLE mail_outbox (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    recipient        VARCHAR(254)  NOT NULL,
    subject          VARCHAR(200)  NOT NULL,
    body             MEDIUMTEXT    NOT NULL,
    created_at       DATETIME(6)   NOT NULL,
    next_attempt_at  DATETIME(6)   NOT NULL,
    attempts         INT UNSIGNED  NOT NULL DEFAULT 0,
    claimed_by       VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_general_ci NULL,
    claimed_until    DATETIME(6)   NULL,
    sent_at          DATETIME(6)   NULL,
    last_error       VARCHAR(255)  NULL,
    KEY ix_mail_outbox_due (sent_at, next_attempt_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Counters for throttling and rate limits, one row per kind and subject (an account,
-- a client address, a browser): a hit locks its row, so parallel requests are counted
-- one after another. Replaces `login_failures`.
CREATE TABLE counters (
    kind               VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    subject            VARCHAR(128) NOT NULL,
    hits               INT UNSIGNED NOT NULL,
    window_start       DATETIME(6)  NOT NULL,
    last_hit_at        DATETIME(6)  NOT NULL,
    -- A refusal since the latest allowed hit was audited already.
    refused_since_hit  BOOLEAN      NOT NULL,
    PRIMARY KEY (kind, subject),
    KEY ix_counters_last (last_hit_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
DROP TABLE login_failures;

-- Browsers that have logged in to an account (OWASP's device cookies): they keep
-- their own failure count, so strangers guessing the account's password cannot lock
-- its owner out.
CREATE TABLE trusted_devices (
    token_hash    BINARY(32)      NOT NULL PRIMARY KEY,
    user_id       BIGINT UNSIGNED NOT NULL,
    created_at    DATETIME(6)     NOT NULL,
    last_used_at  DATETIME(6)     NOT NULL,
    KEY ix_trusted_devices_user (user_id),
    CONSTRAINT fk_trusted_devices_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;
