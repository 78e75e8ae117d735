-- Passkeys (WebAuthn): an account may register several, each with a name of its owner's
-- choosing, and sign in with one alone.

-- The user handle the authenticator stores with a passkey and gives back at sign-in:
-- random, so it tells nothing about the account, and made when the first passkey is.
ALTER TABLE users
    ADD COLUMN passkey_handle BINARY(16) NULL,
    ADD CONSTRAINT uq_users_passkey_handle UNIQUE (passkey_handle);

CREATE TABLE passkeys (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id        BIGINT UNSIGNED NOT NULL,
    -- The authenticator's id for the credential (at most 1023 bytes, WebAuthn 3 §5.1).
    credential_id  VARBINARY(1023) NOT NULL,
    name           VARCHAR(64)  NOT NULL,
    -- webauthn-rs's `Passkey` as JSON: the public key, its algorithm and signature counter.
    credential     TEXT         NOT NULL,
    created_at     DATETIME(6)  NOT NULL,
    last_used_at   DATETIME(6)  NULL,
    CONSTRAINT uq_passkeys_credential UNIQUE (credential_id),
    KEY ix_passkeys_user (user_id, created_at),
    CONSTRAINT fk_passkeys_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A ceremony begun and not yet finished: the challenge's state, kept here rather than in
-- one instance's memory so that any instance can finish what another began. The browser
-- holds a random token; only its SHA-256 is stored. A ceremony is spent by deleting its
-- row, so it finishes once at most.
CREATE TABLE passkey_ceremonies (
    token_hash  BINARY(32)  NOT NULL PRIMARY KEY,
    purpose     ENUM('register', 'sign_in') NOT NULL,
    -- Registration only: the account and the login that began it.
    user_id     BIGINT UNSIGNED NULL,
    session_id  CHAR(43)    CHARACTER SET ascii COLLATE ascii_general_ci NULL,
    state       TEXT        NOT NULL,
    expires_at  DATETIME(6) NOT NULL,
    KEY ix_passkey_ceremonies_expiry (expires_at),
    KEY ix_passkey_ceremonies_user (user_id),
    CONSTRAINT fk_passkey_ceremonies_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;
