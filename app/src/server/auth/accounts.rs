//! Registration, email verification, login, password changes and resets.
//!
//! Answers never tell whether an account exists: registration always says "check your
//! inbox" (the owner of an address that is taken gets a mail instead of a new account),
//! a reset request always says the same, and a failed login is "invalid username or
//! password" whether or not the user exists.

use super::audit::{self, AuditEvent, AuditRecord};
use super::request::RequestInfo;
use super::sessions::CurrentUser;
use super::throttle::{self, Source};
use super::tokens::{self, Purpose};
use super::{devices, password, sessions};
use crate::model::{
    AccountStatus, AppError, Email, NewAccount, NewPassword, PendingAddress, Role, SecondFactor,
    SessionUser, Username,
};
use crate::server::AppState;
use crate::server::db::{Context, mysql_error, truncate, violated_key};
use crate::server::limits::{self, Counter, Limit};
use crate::server::mail::{self, Mail, templates};
use sqlx::{MySqlConnection, MySqlPool};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: u64,
    username: String,
    email: String,
    password_hash: String,
    role: Role,
    status: AccountStatus,
    email_verified: bool,
    has_factor: bool,
}

/// The user as a login that has just checked the password sees them: a second step
/// follows if they have a second factor.
impl From<UserRow> for SessionUser {
    fn from(r: UserRow) -> Self {
        SessionUser {
            id: r.id,
            username: r.username,
            email: r.email,
            role: r.role,
            status: r.status,
            email_verified: r.email_verified,
            second_factor: match r.has_factor {
                true => SecondFactor::Pending,
                false if r.role.needs_second_factor() => SecondFactor::Missing,
                false => SecondFactor::Off,
            },
        }
    }
}

const USER_COLUMNS: &str = "id, username, email, password_hash, role, status, \
     email_verified_at IS NOT NULL AS email_verified, \
     EXISTS (SELECT 1 FROM second_factors f WHERE f.user_id = users.id AND f.confirmed_at IS NOT NULL) AS has_factor";

pub(super) async fn find_by(
    pool: &MySqlPool,
    column: &'static str,
    value: &str,
) -> Result<Option<UserRow>, AppError> {
    // A closed account is nobody's: no login, reset or check finds it.
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE {column} = ? AND status <> 'closed'"
    ))
    .bind(value)
    .fetch_optional(pool)
    .await
    .context("find user")
}

/// The server's part of the password policy: the shared rules plus the common-password
/// check, as a field error of `field`.
async fn strong_enough(password: &str, inputs: &[&str], field: &str) -> Result<(), AppError> {
    password::check_strength(password, inputs)
        .await?
        .map_err(|m| AppError::invalid(field, m))
}

/// Which unique key an insert of a user ran into.
enum Taken {
    Email,
    Username,
}

/// Inserts a user on the caller's connection; `Err(Taken)` when the username or email
/// belongs to someone already.
async fn insert_user(
    conn: &mut MySqlConnection,
    account: &NewAccount,
    hash: &str,
    status: AccountStatus,
    verified: bool,
) -> Result<Result<u64, Taken>, AppError> {
    let result = sqlx::query(
        "INSERT INTO users (username, username_key, email, email_verified_at, password_hash, role, status, created_at) \
         VALUES (?, ?, ?, IF(?, UTC_TIMESTAMP(6), NULL), ?, ?, ?, UTC_TIMESTAMP(6))",
    )
    .bind(account.username.as_str())
    .bind(account.username.key())
    .bind(account.email.as_str())
    .bind(verified)
    .bind(hash)
    .bind(account.role)
    .bind(status)
    .execute(conn)
    .await;
    match result {
        Ok(done) => Ok(Ok(done.last_insert_id())),
        Err(e) => match violated_key(&e).as_deref() {
            Some("uq_users_email") => Ok(Err(Taken::Email)),
            Some("uq_users_username_key") => Ok(Err(Taken::Username)),
            _ => Err(mysql_error("insert user", e)),
        },
    }
}

async fn begin(pool: &MySqlPool) -> Result<sqlx::Transaction<'static, sqlx::MySql>, AppError> {
    pool.begin().await.context("begin")
}

async fn commit(tx: sqlx::Transaction<'static, sqlx::MySql>) -> Result<(), AppError> {
    tx.commit().await.context("commit")
}

/// Ends a transaction that is given up at once (it may hold row locks).
async fn rollback(tx: sqlx::Transaction<'static, sqlx::MySql>) {
    let _ = tx.rollback().await;
}

/// Self-service registration. The answer is the same whatever happens ("check your
/// inbox"), and no one is logged in: the address's owner learns the outcome by mail.
/// A new address gets a verification link; an address that has an account gets a
/// "someone tried to register with your address" notice; a taken username, a request
/// to choose another. Customers are active at once (but see no purchases before the
/// address is verified); technical workers and senior managers wait for approval.
#[tracing::instrument(skip_all, fields(ip = %info.ip))]
pub async fn register(
    state: &AppState,
    info: &RequestInfo,
    account: NewAccount,
) -> Result<(), AppError> {
    limits::check(
        &state.mysql,
        Counter::Register,
        &info.client,
        Limit::per_window(10, HOUR),
    )
    .await?;
    strong_enough(
        account.password.expose(),
        &[account.username.as_str(), account.email.as_str()],
        "password",
    )
    .await?;
    // Every path hashes, so the answer takes as long whether or not the address is taken.
    let hash = password::hash(account.password.expose().to_string()).await?;
    let status = if account.role.needs_approval() {
        AccountStatus::Pending
    } else {
        AccountStatus::Active
    };
    let mailer = &state.mailer;
    let mut tx = begin(&state.mysql).await?;
    let outcome = insert_user(&mut tx, &account, &hash, status, false).await?;
    let (mail, user_id) = match outcome {
        Ok(id) => {
            let token =
                tokens::issue(&mut tx, id, Purpose::VerifyEmail, &account.email, None).await?;
            let link = mailer.link(&format!("/verify-email?token={token}"));
            let mail = templates::verify_email(&account.email, account.username.as_str(), &link);
            (mail, Some(id))
        }
        Err(Taken::Email) => (
            templates::already_registered(
                &account.email,
                &mailer.link("/login"),
                &mailer.link("/forgot-password"),
            ),
            None,
        ),
        Err(Taken::Username) => (
            templates::username_taken(
                &account.email,
                account.username.as_str(),
                &mailer.link("/register"),
            ),
            None,
        ),
    };
    mail::enqueue(&mut tx, &mail).await?;
    commit(tx).await?;
    mailer.nudge();
    let detail = match user_id {
        Some(_) => format!("role {}", account.role),
        None => "refused: username or email taken".into(),
    };
    audit::record(
        &state.mysql,
        AuditEvent::Registered,
        AuditRecord {
            user_id,
            username: Some(account.username.as_str()),
            ip: Some(&info.ip),
            detail: Some(detail),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// Counts one use of a mailed link (confirmation or reset) against the client: 30 an
/// hour, so link tokens cannot be guessed at speed.
async fn link_attempt(state: &AppState, info: &RequestInfo) -> Result<(), AppError> {
    limits::check(
        &state.mysql,
        Counter::LinkAttempt,
        &info.client,
        Limit::per_window(30, HOUR),
    )
    .await?;
    Ok(())
}

const INVALID_CONFIRMATION: &str = "This confirmation link is invalid, expired or already used. Log in and ask for a new one on your profile page.";

/// Confirms an address with the token from a verification link: the address becomes
/// the account's (for a change of address) and verified.
pub async fn verify_email(
    state: &AppState,
    info: &RequestInfo,
    token: &str,
) -> Result<(), AppError> {
    link_attempt(state, info).await?;
    let mut tx = begin(&state.mysql).await?;
    let Some(found) = tokens::redeem(&mut tx, token, Purpose::VerifyEmail).await? else {
        rollback(tx).await;
        return Err(AppError::Conflict(INVALID_CONFIRMATION.into()));
    };
    if matches!(
        found.status,
        AccountStatus::Disabled | AccountStatus::Closed
    ) {
        commit(tx).await?;
        return Err(AppError::Conflict(INVALID_CONFIRMATION.into()));
    }
    let changed_from = (found.current_email != found.email).then(|| found.current_email.clone());
    let updated = sqlx::query(
        "UPDATE users SET email = ?, email_verified_at = UTC_TIMESTAMP(6) WHERE id = ?",
    )
    .bind(&found.email)
    .bind(found.user_id)
    .execute(&mut *tx)
    .await;
    if let Err(e) = updated {
        rollback(tx).await;
        return Err(match violated_key(&e).as_deref() {
            Some("uq_users_email") => AppError::Conflict(
                "This address now belongs to another account, so it cannot be confirmed for yours."
                    .into(),
            ),
            _ => mysql_error("verify email", e),
        });
    }
    tokens::invalidate(&mut tx, found.user_id, Purpose::VerifyEmail).await?;
    if let Some(old) = changed_from
        .as_deref()
        .and_then(|old| Email::parse(old).ok())
    {
        // Reset links went to the old address: they must not outlive the change.
        tokens::invalidate(&mut tx, found.user_id, Purpose::ResetPassword).await?;
        let new = Email::parse(&found.email).map_err(|_| AppError::Internal)?;
        mail::enqueue(
            &mut tx,
            &templates::email_changed(&old, &found.username, &new),
        )
        .await?;
    }
    commit(tx).await?;
    state.mailer.nudge();
    audit::record(
        &state.mysql,
        AuditEvent::EmailVerified,
        AuditRecord {
            user_id: Some(found.user_id),
            ip: Some(&info.ip),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// What a confirmation link would confirm: the address and the account's name, so
/// the mailbox's owner sees whose account they are about to attach it to.
pub async fn pending_address(
    state: &AppState,
    info: &RequestInfo,
    token: &str,
) -> Result<PendingAddress, AppError> {
    link_attempt(state, info).await?;
    let mut conn = state.mysql.acquire().await.context("read link")?;
    match tokens::peek(&mut conn, token, Purpose::VerifyEmail).await? {
        Some(found)
            if found.status != AccountStatus::Disabled && found.status != AccountStatus::Closed =>
        {
            Ok(PendingAddress {
                email: found.email,
                username: found.username,
            })
        }
        _ => Err(AppError::Conflict(INVALID_CONFIRMATION.into())),
    }
}

/// "This is not my account": the mailbox's owner refuses the link, which is spent and
/// can never attach the address; the refusal is audited.
pub async fn decline_address(
    state: &AppState,
    info: &RequestInfo,
    token: &str,
) -> Result<(), AppError> {
    link_attempt(state, info).await?;
    let mut tx = begin(&state.mysql).await?;
    let Some(found) = tokens::redeem(&mut tx, token, Purpose::VerifyEmail).await? else {
        rollback(tx).await;
        return Err(AppError::Conflict(INVALID_CONFIRMATION.into()));
    };
    commit(tx).await?;
    audit::record(
        &state.mysql,
        AuditEvent::EmailDeclined,
        AuditRecord {
            user_id: Some(found.user_id),
            ip: Some(&info.ip),
            detail: Some(format!("declined by the owner of {}", found.email)),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// Sends a new verification link for the signed-in user's address.
pub async fn resend_verification(state: &AppState, current: &CurrentUser) -> Result<(), AppError> {
    if current.user.email_verified {
        return Err(AppError::Conflict(
            "Your email address is confirmed already.".into(),
        ));
    }
    limits::check(
        &state.mysql,
        Counter::VerifyRequest,
        &current.user.id.to_string(),
        Limit::per_window(5, HOUR),
    )
    .await?;
    let email = Email::parse(&current.user.email).map_err(|_| AppError::Internal)?;
    let mut tx = begin(&state.mysql).await?;
    let token = tokens::issue(&mut tx, current.user.id, Purpose::VerifyEmail, &email, None).await?;
    let link = state.mailer.link(&format!("/verify-email?token={token}"));
    mail::enqueue(
        &mut tx,
        &templates::verify_email(&email, &current.user.username, &link),
    )
    .await?;
    commit(tx).await?;
    state.mailer.nudge();
    Ok(())
}

/// Turns the second factor off, for accounts whose role does not require one. The
/// current password confirms it is the owner.
pub async fn disable_second_factor(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    current_password: String,
    code: Option<&str>,
) -> Result<(), AppError> {
    if current.user.role.needs_second_factor() {
        return Err(AppError::Conflict(
            "Staff accounts keep two-factor authentication. A senior manager can reset it if you lost your device."
                .into(),
        ));
    }
    check_current_password(state, info, current, current_password).await?;
    let mut tx = begin(&state.mysql).await?;
    let proof =
        super::second_factor::require_fresh_proof(state, info, current, code, &mut tx).await?;
    let removed = super::second_factor::remove(&mut tx, current.user.id).await?;
    commit(tx).await?;
    if let Some(proof) = proof {
        proof.release(&state.mysql).await?;
    }
    if removed {
        audit::record(
            &state.mysql,
            AuditEvent::SecondFactorDisabled,
            AuditRecord {
                user_id: Some(current.user.id),
                ip: Some(&info.ip),
                ..Default::default()
            },
        )
        .await;
    }
    Ok(())
}

/// New recovery codes, after the current password confirms it is the owner.
pub async fn new_recovery_codes(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    current_password: String,
    code: Option<&str>,
) -> Result<crate::model::RecoveryCodes, AppError> {
    check_current_password(state, info, current, current_password).await?;
    super::second_factor::regenerate_recovery_codes(state, info, current, code).await
}

/// Checks the signed-in user's current password, throttled like a login (a stolen
/// session must not become an unlimited password oracle). A wrong one is audited.
pub(super) async fn check_current_password(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    candidate: String,
) -> Result<(), AppError> {
    let limit = Limit {
        max: state.auth.throttle.max_failures,
        window: state.auth.throttle.window,
        base_delay: state.auth.throttle.base_delay,
    };
    let reserved = limits::check(
        &state.mysql,
        Counter::PasswordChange,
        &current.user.id.to_string(),
        limit,
    )
    .await?;
    let stored = find_by(&state.mysql, "id", &current.user.id.to_string())
        .await?
        .map(|u| u.password_hash);
    if candidate.chars().count() <= crate::model::account::PASSWORD_MAX
        && password::verify(stored, candidate).await?
    {
        limits::release(&state.mysql, &reserved).await?;
        return Ok(());
    }
    audit::record(
        &state.mysql,
        AuditEvent::PasswordCheckFailed,
        AuditRecord {
            user_id: Some(current.user.id),
            ip: Some(&info.ip),
            ..Default::default()
        },
    )
    .await;
    Err(AppError::invalid(
        "current_password",
        "Current password is not correct",
    ))
}

/// Changes the signed-in user's address: the new one receives a confirmation link and
/// becomes the account's once confirmed; the old one is told. An address that belongs
/// to another account gets a notice instead, and the answer is the same.
pub async fn change_email(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    current_password: String,
    new_email: &str,
    code: Option<&str>,
) -> Result<(), AppError> {
    let new = Email::parse(new_email).map_err(|m| AppError::invalid("email", m))?;
    if new.as_str() == current.user.email {
        return Err(AppError::invalid("email", "This is your address already"));
    }
    check_current_password(state, info, current, current_password).await?;
    limits::check(
        &state.mysql,
        Counter::VerifyRequest,
        &current.user.id.to_string(),
        Limit::per_window(5, HOUR),
    )
    .await?;
    let old = Email::parse(&current.user.email).map_err(|_| AppError::Internal)?;
    let in_use = find_by(&state.mysql, "email", new.as_str())
        .await?
        .is_some();
    let mut tx = begin(&state.mysql).await?;
    let proof =
        super::second_factor::require_fresh_proof(state, info, current, code, &mut tx).await?;
    // The old address hears of every request, so what it receives says nothing about
    // whether the new one has an account.
    mail::enqueue(
        &mut tx,
        &templates::email_change_requested(&old, &current.user.username, &new),
    )
    .await?;
    if in_use {
        mail::enqueue(&mut tx, &templates::address_in_use(&new)).await?;
    } else {
        let token =
            tokens::issue(&mut tx, current.user.id, Purpose::VerifyEmail, &new, None).await?;
        let link = state.mailer.link(&format!("/verify-email?token={token}"));
        mail::enqueue(
            &mut tx,
            &templates::verify_email(&new, &current.user.username, &link),
        )
        .await?;
    }
    commit(tx).await?;
    if let Some(proof) = proof {
        proof.release(&state.mysql).await?;
    }
    state.mailer.nudge();
    audit::record(
        &state.mysql,
        AuditEvent::EmailChangeRequested,
        AuditRecord {
            user_id: Some(current.user.id),
            ip: Some(&info.ip),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// What a login answers with, besides the user: the cookie that trusts this browser
/// for the account from now on.
pub struct LoggedIn {
    pub user: SessionUser,
    pub device_cookie: String,
}

#[tracing::instrument(skip(state, info, password), fields(ip = %info.ip))]
pub async fn login(
    state: &AppState,
    info: &RequestInfo,
    username: &str,
    password: String,
) -> Result<LoggedIn, AppError> {
    // The attacker knows the length they sent: refusing at once reveals nothing, and
    // no work is spent hashing a megabyte.
    if password.chars().count() > crate::model::account::PASSWORD_MAX {
        return Err(AppError::InvalidCredentials);
    }
    limits::check(
        &state.mysql,
        Counter::LoginRequest,
        &info.client,
        Limit::per_window(
            state.auth.throttle.requests_per_minute,
            Duration::from_secs(60),
        ),
    )
    .await?;
    let key = Username::parse(username)
        .map(|u| u.key())
        .unwrap_or_else(|_| username.trim().to_lowercase());
    let key = truncate(&key, 64);
    let policy = &state.auth.throttle;
    // The hashing slot first: logins waiting in line hold no throttle reservation, so a
    // burst of logins from one office address does not fill the address's count with
    // attempts that are merely queued (one reservation per slot is in flight at most).
    let slot = limits::COSTLY.slot().await?;
    let device = devices::trusted_for(&state.mysql, info.device.as_deref(), &key).await?;
    let source = match &device {
        Some(device) => Source::Trusted { device },
        None => Source::Untrusted {
            account: &key,
            client: &info.client,
        },
    };
    let reservations = match throttle::reserve(&state.mysql, policy, source).await? {
        Ok(reservations) => reservations,
        Err(throttled) => {
            // One audit row per throttled key and throttle period, however many tries.
            if throttled.refused.first {
                audit::record(
                    &state.mysql,
                    AuditEvent::LoginThrottled,
                    AuditRecord {
                        username: Some(&key),
                        ip: Some(&info.ip),
                        detail: Some(throttled.key),
                        ..Default::default()
                    },
                )
                .await;
            }
            return Err(AppError::Throttled(throttled.refused.retry_after));
        }
    };

    let row = find_by(&state.mysql, "username_key", &key).await?;
    let stored = row.as_ref().map(|r| r.password_hash.clone());
    let verified = password::verify_in(slot, stored, password).await?;
    let Some(row) = row.filter(|_| verified) else {
        let user_id = find_by(&state.mysql, "username_key", &key)
            .await?
            .map(|r| r.id);
        let record = || AuditRecord {
            user_id,
            username: Some(&key),
            ip: Some(&info.ip),
            ..Default::default()
        };
        audit::record(&state.mysql, AuditEvent::LoginFailed, record()).await;
        if reservations
            .first()
            .is_some_and(|r| r.hits == policy.max_failures)
        {
            let detail = Some(format!("{} failures", policy.max_failures));
            audit::record(
                &state.mysql,
                AuditEvent::Lockout,
                AuditRecord { detail, ..record() },
            )
            .await;
        }
        return Err(AppError::InvalidCredentials);
    };
    let user = SessionUser::from(row);
    refuse_disabled(state, info, &user, &key).await?;
    throttle::release(&state.mysql, &reservations).await?;
    complete_login(state, info, user, sessions::Proved::Password, None).await
}

/// Refuses a login to a disabled account whose credentials were right: answered like
/// wrong ones, so the answer never confirms a guessed password (or a found passkey);
/// the owner learns why from the address on file. `key` is the username as typed.
pub(super) async fn refuse_disabled(
    state: &AppState,
    info: &RequestInfo,
    user: &SessionUser,
    key: &str,
) -> Result<(), AppError> {
    if user.status != AccountStatus::Disabled {
        return Ok(());
    }
    disabled_login_notice(state, user).await?;
    audit::record(
        &state.mysql,
        AuditEvent::LoginFailed,
        AuditRecord {
            user_id: Some(user.id),
            username: Some(key),
            ip: Some(&info.ip),
            detail: Some("account disabled".into()),
            ..Default::default()
        },
    )
    .await;
    Err(AppError::InvalidCredentials)
}

/// Everything a login does once its credentials are accepted: the session, the
/// browser trusted for the account from now on, the last-login time and the audit
/// row (`how`, when it was not the password).
pub(super) async fn complete_login(
    state: &AppState,
    info: &RequestInfo,
    user: SessionUser,
    proved: sessions::Proved,
    how: Option<&str>,
) -> Result<LoggedIn, AppError> {
    sessions::start(state, info, &user, proved).await?;
    let device = devices::remember(&state.mysql, user.id, info.device.as_deref()).await?;
    sqlx::query("UPDATE users SET last_login_at = UTC_TIMESTAMP(6) WHERE id = ?")
        .bind(user.id)
        .execute(&state.mysql)
        .await
        .context("record login")?;
    audit::record(
        &state.mysql,
        AuditEvent::LoginSucceeded,
        AuditRecord {
            user_id: Some(user.id),
            ip: Some(&info.ip),
            detail: how.map(str::to_string),
            ..Default::default()
        },
    )
    .await;
    let user = match (proved, user.second_factor) {
        (sessions::Proved::BothFactors, SecondFactor::Pending) => SessionUser {
            second_factor: SecondFactor::Passed,
            ..user
        },
        _ => user,
    };
    Ok(LoggedIn {
        user,
        device_cookie: devices::set_cookie(&device, state.auth.cookie_secure),
    })
}

/// Tells the owner of a disabled account, whose right password was just given, why
/// the login was refused: the page says no more than for a wrong password.
async fn disabled_login_notice(state: &AppState, user: &SessionUser) -> Result<(), AppError> {
    let Ok(to) = Email::parse(&user.email) else {
        return Ok(());
    };
    let mut conn = state
        .mysql
        .acquire()
        .await
        .context("disabled login notice")?;
    mail::enqueue(
        &mut conn,
        &templates::login_to_disabled_account(&to, &user.username),
    )
    .await?;
    state.mailer.nudge();
    Ok(())
}

pub async fn logout(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
) -> Result<(), AppError> {
    sessions::end(state, info, &current.session_key).await?;
    audit::record(
        &state.mysql,
        AuditEvent::Logout,
        AuditRecord {
            user_id: Some(current.user.id),
            ip: Some(&info.ip),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// Ends every session of the user, this one included, and voids their mailed links: a
/// stolen session's pending address change or reset link must not outlive the owner's
/// recovery.
pub async fn logout_everywhere(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
) -> Result<(), AppError> {
    let mut conn = state.mysql.acquire().await.context("void links")?;
    for purpose in [Purpose::VerifyEmail, Purpose::ResetPassword] {
        tokens::invalidate(&mut conn, current.user.id, purpose).await?;
    }
    drop(conn);
    let ended = sessions::delete_all(&state.mysql, current.user.id, None).await?;
    info.session
        .flush()
        .await
        .map_err(super::sessions::session_error)?;
    let detail = Some(format!("everywhere: {ended} sessions ended"));
    let record = AuditRecord {
        user_id: Some(current.user.id),
        ip: Some(&info.ip),
        detail,
        ..Default::default()
    };
    audit::record(&state.mysql, AuditEvent::Logout, record).await;
    Ok(())
}

/// The full policy for a replacement password, as field errors of the password forms.
async fn parse_new_password(
    new: &str,
    confirm: &str,
    username: &str,
    email: &str,
) -> Result<NewPassword, AppError> {
    let parsed = NewPassword::parse(new, Some(username), Some(email))
        .map_err(|m| AppError::invalid("new_password", m))?;
    if new != confirm {
        return Err(AppError::invalid(
            "confirm_password",
            "Passwords do not match",
        ));
    }
    strong_enough(parsed.expose(), &[username, email], "new_password").await?;
    Ok(parsed)
}

/// After a password changed: reset links and any pending address change are void (a
/// stolen session may have asked for the change), and the user is told by mail.
async fn password_replaced(
    state: &AppState,
    conn: &mut MySqlConnection,
    user_id: u64,
    username: &str,
    email: &str,
) -> Result<(), AppError> {
    tokens::invalidate(conn, user_id, Purpose::ResetPassword).await?;
    tokens::invalidate(conn, user_id, Purpose::VerifyEmail).await?;
    if let Ok(to) = Email::parse(email) {
        let notice =
            templates::password_changed(&to, username, &state.mailer.link("/forgot-password"));
        mail::enqueue(conn, &notice).await?;
    }
    Ok(())
}

/// Needs the current password; ends every other session of the user.
pub async fn change_password(
    state: &AppState,
    info: &RequestInfo,
    current: &CurrentUser,
    current_password: String,
    new_password: &str,
    confirm: &str,
) -> Result<(), AppError> {
    let new = parse_new_password(
        new_password,
        confirm,
        &current.user.username,
        &current.user.email,
    )
    .await?;
    check_current_password(state, info, current, current_password).await?;
    let hash = password::hash(new.expose().to_string()).await?;
    let mut tx = begin(&state.mysql).await?;
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(hash)
        .bind(current.user.id)
        .execute(&mut *tx)
        .await
        .context("update password")?;
    password_replaced(
        state,
        &mut tx,
        current.user.id,
        &current.user.username,
        &current.user.email,
    )
    .await?;
    commit(tx).await?;
    state.mailer.nudge();
    let ended =
        sessions::delete_all(&state.mysql, current.user.id, Some(&current.session_key)).await?;
    audit::record(
        &state.mysql,
        AuditEvent::PasswordChanged,
        AuditRecord {
            user_id: Some(current.user.id),
            ip: Some(&info.ip),
            detail: Some(format!("{ended} other sessions ended")),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// "Forgot password?": a reset link to the address, if an account has it. The answer
/// is the same either way, and requests are limited per client and per address.
pub async fn forgot_password(
    state: &AppState,
    info: &RequestInfo,
    email: &str,
) -> Result<(), AppError> {
    let email = Email::parse(email).map_err(|m| AppError::invalid("email", m))?;
    limits::check(
        &state.mysql,
        Counter::ResetRequest,
        &info.client,
        Limit::per_window(10, HOUR),
    )
    .await?;
    limits::check(
        &state.mysql,
        Counter::ResetAddress,
        email.as_str(),
        Limit::per_window(3, HOUR),
    )
    .await?;
    // The lookup and the mail happen after the answer, so its timing is the same
    // whether or not an account has the address.
    let state = state.clone();
    let ip = info.ip.clone();
    tokio::spawn(async move {
        let sent = async {
            match find_by(&state.mysql, "email", email.as_str()).await? {
                Some(user) if user.status != AccountStatus::Disabled => {
                    send_reset_link(&state, &ip, user.id, &user.username, &email, None).await
                }
                _ => Ok(()),
            }
        };
        if let Err(e) = sent.await {
            tracing::error!(error = %e, "reset link not sent");
        }
    });
    Ok(())
}

/// Issues a reset link (voiding older ones) and mails it to the user's address.
async fn send_reset_link(
    state: &AppState,
    ip: &str,
    user_id: u64,
    username: &str,
    email: &Email,
    by: Option<u64>,
) -> Result<(), AppError> {
    let mut tx = begin(&state.mysql).await?;
    let token = tokens::issue(&mut tx, user_id, Purpose::ResetPassword, email, by).await?;
    let link = state.mailer.link(&format!("/reset-password?token={token}"));
    let mail: Mail = templates::password_reset(email, username, &link, by.is_some());
    mail::enqueue(&mut tx, &mail).await?;
    commit(tx).await?;
    state.mailer.nudge();
    audit::record(
        &state.mysql,
        AuditEvent::ResetIssued,
        AuditRecord {
            user_id: Some(user_id),
            actor_id: by,
            ip: Some(ip),
            detail: Some(
                if by.is_some() {
                    "by a manager"
                } else {
                    "requested by mail"
                }
                .into(),
            ),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// A senior manager sends a reset link to a user's address (never to themselves, and
/// not for another senior manager: a stolen manager session must not take over accounts).
pub async fn send_reset_link_for(
    state: &AppState,
    info: &RequestInfo,
    actor: &CurrentUser,
    user_id: u64,
) -> Result<(), AppError> {
    if actor.user.id == user_id {
        return Err(AppError::Conflict(
            "Change your own password on your profile page.".into(),
        ));
    }
    let user = find_by(&state.mysql, "id", &user_id.to_string())
        .await?
        .ok_or(AppError::NotFound)?;
    if user.role == Role::SeniorManagement {
        return Err(AppError::Conflict(
            "Senior managers reset their own passwords from the login page.".into(),
        ));
    }
    let email = Email::parse(&user.email).map_err(|_| AppError::Internal)?;
    send_reset_link(
        state,
        &info.ip,
        user.id,
        &user.username,
        &email,
        Some(actor.user.id),
    )
    .await
}

/// Sets a new password through a one-time reset link; ends all the user's sessions.
pub async fn reset_password(
    state: &AppState,
    info: &RequestInfo,
    token: &str,
    new_password: &str,
    confirm: &str,
) -> Result<(), AppError> {
    const INVALID_LINK: &str = "This reset link is invalid, expired or already used. Ask for a new one from the login page.";
    link_attempt(state, info).await?;
    let mut tx = begin(&state.mysql).await?;
    let Some(found) = tokens::redeem(&mut tx, token, Purpose::ResetPassword).await? else {
        rollback(tx).await;
        audit::record(
            &state.mysql,
            AuditEvent::ResetFailed,
            AuditRecord {
                ip: Some(&info.ip),
                ..Default::default()
            },
        )
        .await;
        return Err(AppError::Conflict(INVALID_LINK.into()));
    };
    // Sent to an address the account no longer has, or to an account since disabled:
    // the link is spent, and void.
    if found.email != found.current_email || found.status != AccountStatus::Active {
        commit(tx).await?;
        return Err(AppError::Conflict(INVALID_LINK.into()));
    }
    let new = match parse_new_password(new_password, confirm, &found.username, &found.email).await {
        Ok(new) => new,
        // The link stays usable for a better password.
        Err(e) => {
            rollback(tx).await;
            return Err(e);
        }
    };
    let hash = password::hash(new.expose().to_string()).await?;
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(hash)
        .bind(found.user_id)
        .execute(&mut *tx)
        .await
        .context("reset password")?;
    password_replaced(state, &mut tx, found.user_id, &found.username, &found.email).await?;
    sqlx::query("DELETE FROM user_sessions WHERE user_id = ?")
        .bind(found.user_id)
        .execute(&mut *tx)
        .await
        .context("end sessions")?;
    commit(tx).await?;
    state.mailer.nudge();
    audit::record(
        &state.mysql,
        AuditEvent::ResetUsed,
        AuditRecord {
            user_id: Some(found.user_id),
            ip: Some(&info.ip),
            ..Default::default()
        },
    )
    .await;
    Ok(())
}

/// The id of the account with this username key, if there is one.
pub(crate) async fn id_by_username_key(
    pool: &MySqlPool,
    key: &str,
) -> Result<Option<u64>, AppError> {
    Ok(find_by(pool, "username_key", key).await?.map(|u| u.id))
}

/// `server user create` and the demo seed: an active, verified user of any role. `via`
/// says which, for the audit log.
pub async fn create_active_user(
    pool: &MySqlPool,
    account: &NewAccount,
    via: &str,
) -> Result<u64, AppError> {
    strong_enough(
        account.password.expose(),
        &[account.username.as_str(), account.email.as_str()],
        "password",
    )
    .await?;
    let hash = password::hash(account.password.expose().to_string()).await?;
    let mut conn = pool.acquire().await.context("create user")?;
    let id = match insert_user(&mut conn, account, &hash, AccountStatus::Active, true).await? {
        Ok(id) => id,
        Err(Taken::Email) => {
            return Err(AppError::invalid(
                "email",
                "An account with this email already exists",
            ));
        }
        Err(Taken::Username) => {
            return Err(AppError::invalid("username", "This username is taken"));
        }
    };
    audit::record(
        pool,
        AuditEvent::UserCreated,
        AuditRecord {
            user_id: Some(id),
            detail: Some(format!("role {} ({via})", account.role)),
            ..Default::default()
        },
    )
    .await;
    Ok(id)
}
