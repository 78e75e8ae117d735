//! Demo data for `scripts/run` (`PORTAL_SEED_DEMO`, loopback only): one account per
//! role with published credentials, and 5,000 generated sales. Idempotent, and safe
//! when several instances seed at once.

use crate::model::{AppError, Email, FieldError, Role, Sale};
use crate::server::auth::accounts;
use crate::server::auth::secret_keys::SecretKeys;
use crate::server::db::Context;
use crate::server::sales::dual_write::{Author, Writer};
use crate::server::sales::{generate, import, primary};
use chrono::Utc;
use sqlx::MySqlPool;

/// Seeds what is missing: returns (accounts created, sales created).
pub async fn seed(writer: &Writer, keys: &SecretKeys) -> Result<(usize, u64), AppError> {
    let accounts = seed_accounts(&writer.backup().pool, keys).await?;
    let sales = seed_sales(writer).await?;
    Ok((accounts, sales))
}

/// The demo accounts `scripts/run` provides, one per role (documented in the README).
/// A demo account, created by `PORTAL_SEED_DEMO` (loopback only): its password and,
/// for staff, its TOTP secret are published in the README.
pub struct DemoAccount {
    pub username: &'static str,
    pub email: &'static str,
    pub password: &'static str,
    pub role: Role,
    /// Base32; `scripts/demo-code` prints the current code.
    pub totp_secret: Option<&'static str>,
}

pub const DEMO_ACCOUNTS: [DemoAccount; 3] = [
    DemoAccount {
        username: "demo.customer",
        email: "demo.customer@example.com",
        password: "Paperclip-Harbor-42",
        role: Role::Customer,
        totp_secret: None,
    },
    DemoAccount {
        username: "demo.worker",
        email: "demo.worker@example.com",
        password: "Stapler-Lantern-77",
        role: Role::TechnicalWorker,
        totp_secret: Some("STAPLERLANTERNDEMOWORKERSECRETAA"),
    },
    DemoAccount {
        username: "demo.manager",
        email: "demo.manager@example.com",
        password: "Ledger-Orchard-19",
        role: Role::SeniorManagement,
        totp_secret: Some("LEDGERORCHARDDEMOMANAGERSECRETAA"),
    },
];

/// Creates the demo accounts that do not exist yet, and gives demo staff their
/// published second factor if they have none; returns how many accounts were created.
pub async fn seed_accounts(pool: &MySqlPool, keys: &SecretKeys) -> Result<usize, AppError> {
    let mut created = 0;
    for demo in &DEMO_ACCOUNTS {
        let input = crate::model::RegistrationInput {
            username: demo.username.into(),
            email: demo.email.into(),
            password: demo.password.into(),
            confirm_password: demo.password.into(),
            role: demo.role.as_str().into(),
        };
        let account = input.parse().map_err(AppError::Invalid)?;
        let id = match accounts::id_by_username_key(pool, &account.username.key()).await? {
            Some(existing) => existing,
            None => match accounts::create_active_user(pool, &account, "demo seed").await {
                Ok(id) => {
                    created += 1;
                    id
                }
                // Another instance seeded it between our check and insert.
                Err(AppError::Invalid(e))
                    if e.iter().any(|f: &FieldError| f.field == "username") =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        if let Some(secret) = demo.totp_secret {
            sqlx::query(
                "INSERT IGNORE INTO second_factors (user_id, secret, confirmed_at, created_at) \
                 VALUES (?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
            )
            .bind(id)
            .bind(keys.seal(id, secret)?)
            .execute(pool)
            .await
            .context("seed demo second factor")?;
        }
    }
    Ok(created)
}

/// Demo data: 5,000 generated sales (fixed seed), one in 250 of them bought by the demo
/// customer account so its dashboard has purchases. Only when the collection is empty.
/// Written through the dual writer's batch create, whose leases keep an early edit of
/// a seeded sale from racing the seed's backup write.
pub async fn seed_sales(writer: &Writer) -> Result<u64, AppError> {
    const DEMO_SEED: u64 = 2015;
    let mongo = &writer.primary().db;
    if !primary::is_empty(mongo).await? {
        return Ok(0);
    }
    primary::ensure_indexes(mongo).await?;
    let demo_email = Email::parse(DEMO_ACCOUNTS[0].email).expect("demo email is valid");
    let now = Utc::now();
    let all: Vec<Sale> = generate::sales(DEMO_SEED)
        .take(5000)
        .enumerate()
        .map(|(i, mut draft)| {
            if i % 250 == 0 {
                draft.customer.email = demo_email.clone();
            }
            Sale {
                id: import::derived_id(&draft),
                version: 1,
                updated_at: now,
                draft,
            }
        })
        .collect();
    let writer = writer.by(Author::Import);
    let mut inserted = 0;
    for batch in all.chunks(import::DEFAULT_BATCH) {
        inserted += writer.import_batch(batch).await?.0;
    }
    Ok(inserted)
}
