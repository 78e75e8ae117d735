//! Second-factor secrets at rest: sealed with AES-256-GCM under a key from the
//! environment (`TOTP_KEYS`), so a leaked database or backup passes no second step.
//!
//! A sealed secret reads `v<key id>:<nonce hex>:<ciphertext hex>`; the account's id is
//! the associated data, so a sealed secret copied to another account does not open.
//! Keys are numbered, newest first in `TOTP_KEYS`: rotating adds a new key in front,
//! runs `server reseal-totp-secrets` (which seals every secret under the newest key),
//! then drops the old key. A secret still in plain text (written before sealing, or by
//! an instance not yet upgraded) is read as it is, and sealed by the next reseal.

use crate::model::AppError;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sqlx::MySqlPool;

/// The key every loopback instance uses when `TOTP_KEYS` is not set (`scripts/run`,
/// the tests). It is published here, so it protects nothing: outside loopback the
/// server refuses to start without keys of its own.
const DEVELOPMENT_KEY: [u8; 32] = *b"supply-co-portal-dev-totp-key-00";

/// The development key's id. Any instance opens secrets under it, keys or not: the key
/// is published and protects nothing, and so a database that began on loopback moves
/// under real keys with one reseal.
const DEVELOPMENT_ID: u16 = 0;

const NONCE_BYTES: usize = 12;

fn development_cipher() -> Aes256Gcm {
    Aes256Gcm::new_from_slice(&DEVELOPMENT_KEY).expect("a 32-byte key")
}

pub struct SecretKeys {
    /// Newest first: the first seals, any opens.
    keys: Vec<(u16, Aes256Gcm)>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<u16> = self.keys.iter().map(|(id, _)| *id).collect();
        f.debug_struct("SecretKeys").field("ids", &ids).finish()
    }
}

impl SecretKeys {
    /// `TOTP_KEYS`: comma-separated `<id>:<64 hex digits>`, newest first (make a key
    /// with `openssl rand -hex 32`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, hex_key) = entry
                .split_once(':')
                .ok_or("each TOTP_KEYS entry reads <id>:<64 hex digits>")?;
            let id: u16 = id
                .parse()
                .map_err(|_| format!("TOTP_KEYS: key id {id:?} is not a number"))?;
            let bytes = hex::decode(hex_key)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| format!("TOTP_KEYS: key {id} is not 64 hex digits (32 bytes)"))?;
            if id == DEVELOPMENT_ID {
                return Err(
                    "TOTP_KEYS: key id 0 belongs to the published development key; number keys from 1"
                        .into(),
                );
            }
            if keys.iter().any(|(k, _)| *k == id) {
                return Err(format!("TOTP_KEYS: key id {id} is given twice"));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|e| e.to_string())?;
            keys.push((id, cipher));
        }
        if keys.is_empty() {
            return Err("TOTP_KEYS holds no key".into());
        }
        Ok(Self { keys })
    }

    /// The published loopback key (id 0).
    pub fn development() -> Self {
        Self {
            keys: vec![(DEVELOPMENT_ID, development_cipher())],
        }
    }

    /// The key a sealed secret needs that these keys lack, if any.
    fn missing_key_of(&self, stored: &str) -> Option<u16> {
        let key = Sealed::parse(stored)?.key;
        let held = key == DEVELOPMENT_ID || self.keys.iter().any(|(id, _)| *id == key);
        (!held).then_some(key)
    }

    fn newest(&self) -> &(u16, Aes256Gcm) {
        &self.keys[0]
    }

    /// `secret` sealed under the newest key, bound to the account.
    pub fn seal(&self, user_id: u64, secret: &str) -> Result<String, AppError> {
        let (id, cipher) = self.newest();
        let nonce_bytes = super::tokens::random_bytes(NONCE_BYTES);
        let nonce = Nonce::from_slice(&nonce_bytes);
        let aad = user_id.to_be_bytes();
        let sealed = cipher
            .encrypt(
                nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| {
                tracing::error!("sealing a second-factor secret failed");
                AppError::Internal
            })?;
        Ok(format!(
            "v{id}:{}:{}",
            hex::encode(nonce_bytes),
            hex::encode(sealed)
        ))
    }

    /// The secret as stored: opened if sealed, as it is if still plain.
    pub fn open(&self, user_id: u64, stored: &str) -> Result<String, AppError> {
        let Some(sealed) = Sealed::parse(stored) else {
            return Ok(stored.to_string());
        };
        let broken = |why: &str| {
            tracing::error!(
                key = sealed.key,
                user_id,
                why,
                "a second-factor secret does not open"
            );
            AppError::Internal
        };
        let development;
        let cipher = match self.keys.iter().find(|(id, _)| *id == sealed.key) {
            Some((_, cipher)) => cipher,
            None if sealed.key == DEVELOPMENT_ID => {
                development = development_cipher();
                &development
            }
            None => return Err(broken("its key is not in TOTP_KEYS")),
        };
        let aad = user_id.to_be_bytes();
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| broken("wrong key, account or data"))?;
        String::from_utf8(plain).map_err(|_| broken("not text"))
    }

    /// Whether `stored` is plain, or sealed under a key other than the newest.
    pub fn needs_resealing(&self, stored: &str) -> bool {
        Sealed::parse(stored).is_none_or(|s| s.key != self.newest().0)
    }
}

struct Sealed {
    key: u16,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl Sealed {
    /// `None` for a plain secret (base32 has no `:`).
    fn parse(stored: &str) -> Option<Self> {
        let rest = stored.strip_prefix('v')?;
        let mut parts = rest.splitn(3, ':');
        let key = parts.next()?.parse().ok()?;
        let nonce = hex::decode(parts.next()?)
            .ok()
            .filter(|n| n.len() == NONCE_BYTES)?;
        let ciphertext = hex::decode(parts.next()?).ok()?;
        Some(Self {
            key,
            nonce,
            ciphertext,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    #[error(
        "the secret of account {user_id} is sealed under key {key}, which TOTP_KEYS does not hold: \
         keep that key (after the newest) until the reseal reports 0"
    )]
    KeyMissing { user_id: u64, key: u16 },
    #[error(transparent)]
    Store(#[from] AppError),
}

/// Seals every secret that is plain or under an older key with the newest key; returns
/// how many changed. Each row is rewritten only if it still holds what was read, so an
/// enrolment racing the reseal is never overwritten; rerun until it reports 0. Nothing
/// is written while a secret's key is missing.
pub async fn reseal_all(pool: &MySqlPool, keys: &SecretKeys) -> Result<u64, ResealError> {
    use crate::server::db::Context;
    #[derive(sqlx::FromRow)]
    struct Row {
        user_id: u64,
        secret: String,
    }
    let rows: Vec<Row> = sqlx::query_as("SELECT user_id, secret FROM second_factors")
        .fetch_all(pool)
        .await
        .context("read second-factor secrets")?;
    if let Some((row, key)) = rows
        .iter()
        .find_map(|r| keys.missing_key_of(&r.secret).map(|key| (r, key)))
    {
        return Err(ResealError::KeyMissing {
            user_id: row.user_id,
            key,
        });
    }
    let mut changed = 0;
    for row in rows.iter().filter(|r| keys.needs_resealing(&r.secret)) {
        let plain = keys.open(row.user_id, &row.secret)?;
        let sealed = keys.seal(row.user_id, &plain)?;
        changed +=
            sqlx::query("UPDATE second_factors SET secret = ? WHERE user_id = ? AND secret = ?")
                .bind(sealed)
                .bind(row.user_id)
                .bind(&row.secret)
                .execute(pool)
                .await
                .context("reseal a second-factor secret")?
                .rows_affected();
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

    fn keys(spec: &str) -> SecretKeys {
        SecretKeys::parse(spec).unwrap()
    }

    const K1: &str = "1:0101010101010101010101010101010101010101010101010101010101010101";
    const K2: &str = "2:0202020202020202020202020202020202020202020202020202020202020202";

    #[test]
    fn a_sealed_secret_opens_for_its_account_only() {
        let k = keys(K1);
        let sealed = k.seal(7, SECRET).unwrap();
        assert!(sealed.starts_with("v1:") && !sealed.contains(SECRET));
        assert_eq!(k.open(7, &sealed).unwrap(), SECRET);
        assert!(k.open(8, &sealed).is_err(), "moved to another account");
        assert_ne!(
            k.seal(7, SECRET).unwrap(),
            sealed,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn rotation_opens_old_secrets_and_seals_under_the_newest_key() {
        let old = keys(K1).seal(7, SECRET).unwrap();
        let both = keys(&format!("{K2},{K1}"));
        assert_eq!(both.open(7, &old).unwrap(), SECRET);
        assert!(both.needs_resealing(&old));
        let new = both.seal(7, SECRET).unwrap();
        assert!(new.starts_with("v2:") && !both.needs_resealing(&new));
        assert!(
            keys(K2).open(7, &old).is_err(),
            "the old key dropped too soon"
        );
    }

    #[test]
    fn secrets_under_the_published_development_key_open_anywhere() {
        let dev = SecretKeys::development().seal(7, SECRET).unwrap();
        let real = keys(K1);
        assert_eq!(real.open(7, &dev).unwrap(), SECRET);
        assert!(real.needs_resealing(&dev));
        assert_eq!(real.missing_key_of(&dev), None);
        let old = keys(K2).seal(7, SECRET).unwrap();
        assert_eq!(real.missing_key_of(&old), Some(2));
    }

    #[test]
    fn plain_secrets_are_read_and_marked_for_sealing() {
        let k = keys(K1);
        assert_eq!(k.open(7, SECRET).unwrap(), SECRET);
        assert!(k.needs_resealing(SECRET));
    }

    #[test]
    fn bad_key_specs_are_refused() {
        let zero = format!("0:{}", "00".repeat(32));
        for bad in ["", "1", "x:00", "1:abcd", &format!("{K1},{K1}"), &zero] {
            assert!(SecretKeys::parse(bad).is_err(), "{bad:?}");
        }
    }
}
