//! Outgoing mail: a queue in MySQL (`mail_outbox`) and a sender in every instance.
//!
//! A request only adds a row, in its own transaction when it has one (a verification
//! link is queued with the account it belongs to), so it never waits on SMTP. The
//! sender claims due messages with a compare-and-set on their claim (a message is sent
//! by one instance at a time), sends them, and on failure schedules a retry with
//! backoff: a mail server that is down delays mail and loses none.

use crate::model::{AppError, Email};
use crate::server::db::{Context, truncate};
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::MySqlConnection;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// One message, plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: Email,
    pub subject: String,
    pub body: String,
}

/// How the app sends mail and writes links into it.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Where the site is reached from outside, without a trailing slash; the links in
    /// mail start with it.
    public_url: Arc<str>,
    wake: Arc<Notify>,
}

impl Mailer {
    /// `smtp_url`: `smtp://host:port` (plain), `smtp://host?tls=required` (STARTTLS) or
    /// `smtps://host` (TLS), with `user:password@` when the server wants a login.
    pub fn new(smtp_url: &str, from: &str, public_url: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| format!("SMTP_URL is not a valid SMTP URL: {e}"))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("MAIL_FROM is not a valid address: {e}"))?;
        Ok(Self {
            transport,
            from,
            public_url: public_url.trim_end_matches('/').into(),
            wake: Arc::default(),
        })
    }

    /// An absolute link to a path of the site.
    pub fn link(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.public_url)
    }

    /// Tells this instance's sender that a message is waiting (others find it on
    /// their next look, within a second).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.parse().map_err(|e| format!("recipient: {e}"))?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|e| format!("message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Queues a message on the caller's connection (inside its transaction, if any).
pub async fn enqueue(conn: &mut MySqlConnection, mail: &Mail) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO mail_outbox (recipient, subject, body, created_at, next_attempt_at) \
         VALUES (?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
    )
    .bind(mail.to.as_str())
    .bind(truncate(&mail.subject, 200))
    .bind(&mail.body)
    .execute(conn)
    .await
    .context("queue mail")?;
    Ok(())
}

/// Messages claimed per look.
const BATCH: u32 = 20;
/// How long a claim lasts: a sender that dies leaves its messages to others after this.
const CLAIM: Duration = Duration::from_secs(120);

#[derive(sqlx::FromRow)]
struct Queued {
    id: u64,
    recipient: String,
    subject: String,
    body: String,
    attempts: u32,
}

/// Claims and sends what is due; returns how many were sent.
pub async fn send_due(
    pool: &sqlx::MySqlPool,
    mailer: &Mailer,
    sender: &str,
) -> Result<u64, AppError> {
    let claimed = sqlx::query(
        "UPDATE mail_outbox SET claimed_by = ?, claimed_until = UTC_TIMESTAMP(6) + INTERVAL ? SECOND \
         WHERE sent_at IS NULL AND next_attempt_at <= UTC_TIMESTAMP(6) \
         AND (claimed_until IS NULL OR claimed_until < UTC_TIMESTAMP(6)) ORDER BY id LIMIT ?",
    )
    .bind(sender)
    .bind(CLAIM.as_secs())
    .bind(BATCH)
    .execute(pool)
    .await
    .context("claim mail")?
    .rows_affected();
    if claimed == 0 {
        return Ok(0);
    }
    let queued: Vec<Queued> = sqlx::query_as(
        "SELECT id, recipient, subject, body, attempts FROM mail_outbox \
         WHERE claimed_by = ? AND sent_at IS NULL ORDER BY id",
    )
    .bind(sender)
    .fetch_all(pool)
    .await
    .context("load mail")?;
    let mut sent = 0;
    for m in queued {
        let outcome = mailer.send(&m.recipient, &m.subject, &m.body).await;
        let update = match &outcome {
            Ok(()) => sqlx::query(
                "UPDATE mail_outbox SET sent_at = UTC_TIMESTAMP(6), attempts = attempts + 1, \
                 claimed_by = NULL, claimed_until = NULL WHERE id = ? AND claimed_by = ?",
            )
            .bind(m.id)
            .bind(sender),
            Err(e) => {
                let wait = 5u64.saturating_mul(1 << m.attempts.min(10)).min(3600);
                tracing::warn!(mail = m.id, attempts = m.attempts + 1, retry_in_secs = wait, error = %e, "sending mail failed; will retry");
                sqlx::query(
                    "UPDATE mail_outbox SET attempts = attempts + 1, last_error = ?, \
                     next_attempt_at = UTC_TIMESTAMP(6) + INTERVAL ? SECOND, claimed_by = NULL, claimed_until = NULL \
                     WHERE id = ? AND claimed_by = ?",
                )
                .bind(truncate(e, 255))
                .bind(wait)
                .bind(m.id)
                .bind(sender)
            }
        };
        update.execute(pool).await.context("record mail outcome")?;
        if outcome.is_ok() {
            sent += 1;
        }
    }
    Ok(sent)
}

/// Sends queued mail for the life of the process: at once when this instance queues
/// a message, and every second for what other instances queued or retries.
pub fn spawn_sender(pool: sqlx::MySqlPool, mailer: Mailer, sender: String) {
    tokio::spawn(async move {
        loop {
            match send_due(&pool, &mailer, &sender).await {
                // More may be due right away.
                Ok(n) if n >= u64::from(BATCH) => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "mail sender could not reach MySQL; will retry")
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), mailer.wake.notified()).await;
        }
    });
}

/// The portal's messages.
pub mod templates {
    use super::Mail;
    use crate::model::Email;

    const SIGNATURE: &str = "\n\n-- \nSupply Co. sales portal\n";

    /// A username as mail shows it. Usernames are chosen by whoever registers, and some
    /// look like a web address ("login-supplyco.com") that mail programs turn into a
    /// link under the portal's name: each dot is shown as a one-dot leader (U+2024),
    /// which reads the same and links nowhere.
    pub fn account_name(username: &str) -> String {
        username.replace('.', "\u{2024}")
    }

    fn mail(to: &Email, subject: &str, body: String) -> Mail {
        Mail {
            to: to.clone(),
            subject: subject.into(),
            body: body + SIGNATURE,
        }
    }

    pub fn verify_email(to: &Email, username: &str, link: &str) -> Mail {
        let username = account_name(username);
        mail(
            to,
            "Confirm your email address",
            format!(
                "Hello,\n\nThe account \"{username}\" at the Supply Co. sales portal gave this email address as \
                 its own. If that account is yours, confirm the address by opening the link below within 24 \
                 hours:\n\n{link}\n\nIf you did not create the account \"{username}\" or ask for this change, \
                 do not confirm: the page the link opens has a \"This is not my account\" button, or ignore \
                 this message. Confirming would let that account see the purchases made with this address."
            ),
        )
    }

    pub fn already_registered(to: &Email, login: &str, forgot: &str) -> Mail {
        mail(
            to,
            "Someone tried to register with your address",
            format!(
                "Hello,\n\nSomeone just tried to create an account at the Supply Co. sales portal with this \
                 email address, which already has an account. No new account was created.\n\n\
                 If it was you, log in at {login}\nor, if you forgot your password, reset it at {forgot}\n\n\
                 If it was not you, you need not do anything."
            ),
        )
    }

    pub fn username_taken(to: &Email, username: &str, register: &str) -> Mail {
        let username = account_name(username);
        mail(
            to,
            "Choose another username",
            format!(
                "Hello,\n\nYou tried to register at the Supply Co. sales portal as \"{username}\", but that \
                 username is taken. No account was created. Please register again with another username:\n\n{register}"
            ),
        )
    }

    pub fn password_reset(to: &Email, username: &str, link: &str, by_manager: bool) -> Mail {
        let username = account_name(username);
        let why = if by_manager {
            "A senior manager asked for a password reset for your account."
        } else {
            "Someone (hopefully you) asked to reset the password of your account."
        };
        mail(
            to,
            "Reset your password",
            format!(
                "Hello {username},\n\n{why} To choose a new password, open this link within an hour:\n\n{link}\n\n\
                 The link works once. If you did not ask for this, ignore this message: your password stays as it is."
            ),
        )
    }

    pub fn password_changed(to: &Email, username: &str, forgot: &str) -> Mail {
        let username = account_name(username);
        mail(
            to,
            "Your password was changed",
            format!(
                "Hello {username},\n\nThe password of your Supply Co. sales portal account was just changed, and \
                 your other sessions were ended.\n\nIf you did not do this, reset your password at once at {forgot} \
                 and tell a senior manager."
            ),
        )
    }

    pub fn email_change_requested(to: &Email, username: &str, new: &Email) -> Mail {
        let username = account_name(username);
        mail(
            to,
            "Your email address is being changed",
            format!(
                "Hello {username},\n\nSomeone signed in to your account asked to change its email address to \
                 {new}. The change happens once the new address is confirmed.\n\nIf this was not you, change \
                 your password now and tell a senior manager."
            ),
        )
    }

    pub fn second_factor_reset(to: &Email, username: &str) -> Mail {
        let username = account_name(username);
        mail(
            to,
            "Your two-factor authentication was reset",
            format!(
                "Hello {username},\n\nA senior manager removed the two-factor authentication of your Supply Co. \
                 sales portal account, and its passkeys, and your sessions were ended. Set it up again on your \
                 profile page after your next login.\n\nIf you did not ask for this, tell a senior manager at once."
            ),
        )
    }

    pub fn email_changed(to: &Email, username: &str, new: &Email) -> Mail {
        let username = account_name(username);
        mail(
            to,
            "Your email address was changed",
            format!(
                "Hello {username},\n\nThe email address of your Supply Co. sales portal account is now {new}: \
                 this address no longer receives its mail, and links sent here before no longer work.\n\n\
                 If you did not do this, tell a senior manager at once."
            ),
        )
    }

    pub fn login_to_disabled_account(to: &Email, username: &str) -> Mail {
        let username = account_name(username);
        mail(
            to,
            "A login to your disabled account",
            format!(
                "Hello {username},\n\nSomeone just gave the right password for your Supply Co. sales portal \
                 account, which is disabled, so the login was refused. If it was you, ask a senior manager to \
                 enable the account again.\n\nIf it was not you, your password is known to someone else: \
                 tell a senior manager."
            ),
        )
    }

    pub fn recovery_codes_replaced(to: &Email, username: &str) -> Mail {
        let username = account_name(username);
        mail(
            to,
            "New recovery codes were made for your account",
            format!(
                "Hello {username},\n\nNew recovery codes for the two-factor authentication of your Supply Co. \
                 sales portal account were just made; the old ones no longer work.\n\nIf you did not do this, \
                 someone is signed in as you: change your password (which ends every other session) and tell \
                 a senior manager."
            ),
        )
    }

    /// The passkey's name is left out: whoever added it chose it, and a mail to the
    /// owner must not carry an intruder's words.
    pub fn passkey_added(to: &Email, username: &str) -> Mail {
        let username = account_name(username);
        mail(
            to,
            "A passkey was added to your account",
            format!(
                "Hello {username},\n\nA passkey was just added to your Supply Co. sales portal account. A \
                 passkey signs in on its own, without the password.\n\nIf you did not do this, someone is \
                 signed in as you: remove it under Two-factor authentication in your profile, change your \
                 password (which ends every other session) and tell a senior manager."
            ),
        )
    }

    pub fn passkey_removed(to: &Email, username: &str) -> Mail {
        let username = account_name(username);
        mail(
            to,
            "A passkey was removed from your account",
            format!(
                "Hello {username},\n\nA passkey was just removed from your Supply Co. sales portal account; \
                 it no longer signs in.\n\nIf you did not do this, someone is signed in as you: change your \
                 password (which ends every other session) and tell a senior manager."
            ),
        )
    }

    pub fn second_step_guessed(to: &Email, username: &str) -> Mail {
        let username = account_name(username);
        mail(
            to,
            "Someone is guessing your two-factor codes",
            format!(
                "Hello {username},\n\nSomeone who knows the password of your Supply Co. sales portal account \
                 has entered many wrong two-factor codes today, so the second step is closed for a day. If it \
                 was not you, change your password now and tell a senior manager."
            ),
        )
    }

    pub fn factor_setup_code(to: &Email, username: &str, code: &str) -> Mail {
        let username = account_name(username);
        mail(
            to,
            "Your code to set up two-factor authentication",
            format!(
                "Hello {username},\n\nTo finish setting up two-factor authentication for your Supply Co. \
                 sales portal account, enter this code beside the one your authenticator app shows:\n\n\
                 {code}\n\nIt works once, for 30 minutes. If you are not setting it up, someone knows your \
                 password: change it now and tell a senior manager."
            ),
        )
    }

    pub fn address_in_use(to: &Email) -> Mail {
        mail(
            to,
            "Your address was given for another account",
            "Hello,\n\nSomeone asked to use this email address for an account at the Supply Co. sales portal, \
             but it already belongs to an account. Nothing was changed.\n\nIf it was you, log in with the account \
             this address already has."
                .to_string(),
        )
    }
}

/// Forgets mail sent more than 30 days ago; run hourly by every instance.
pub async fn prune(pool: &sqlx::MySqlPool) -> Result<(), AppError> {
    sqlx::query("DELETE FROM mail_outbox WHERE sent_at < UTC_TIMESTAMP(6) - INTERVAL 30 DAY")
        .execute(pool)
        .await
        .context("prune sent mail")?;
    Ok(())
}
