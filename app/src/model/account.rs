//! Account input types. Each parses raw input once; a value of the type is valid by
//! construction. The UI calls the same functions for inline messages before submit.

use super::{AccountStatus, FieldError, Role};
use serde::{Deserialize, Serialize};

pub const PASSWORD_MIN: usize = 12;
pub const PASSWORD_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let len = s.chars().count();
        if !(3..=32).contains(&len) {
            return Err("Username must be 3 to 32 characters".into());
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err("Username may use only letters, digits, '.', '_' and '-'".into());
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err("Username must start with a letter or digit".into());
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive identity of the account ("Alice" and "alice" are one user).
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    /// A practical address check: one `@`, a sensible local part, and a dotted domain
    /// of letters, digits and hyphens. Stored lower-cased.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().to_lowercase();
        const INVALID: &str = "Enter a valid email address, like name@example.com";
        if s.is_empty() {
            return Err("Email is required".into());
        }
        if s.len() > 254 {
            return Err("Email must be at most 254 characters".into());
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err(INVALID.into());
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
        if local_ok && domain_ok {
            Ok(Self(s))
        } else {
            Err(INVALID.into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password that meets the policy for a new secret. The common-password check needs
/// a dictionary, so it runs on the server only (see `server::auth::password`).
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

impl NewPassword {
    pub fn parse(raw: &str, username: Option<&str>, email: Option<&str>) -> Result<Self, String> {
        let len = raw.chars().count();
        if len < PASSWORD_MIN {
            return Err(format!(
                "Password must be at least {PASSWORD_MIN} characters"
            ));
        }
        if len > PASSWORD_MAX {
            return Err(format!(
                "Password must be at most {PASSWORD_MAX} characters"
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err("Password may not contain control characters".into());
        }
        let lowered = raw.to_lowercase();
        let mut personal: Vec<String> = Vec::new();
        if let Some(u) = username {
            personal.push(u.trim().to_lowercase());
        }
        if let Some(e) = email.and_then(|e| Email::parse(e).ok()) {
            personal.push(e.local_part().to_string());
            personal.push(e.as_str().to_string());
        }
        let too_similar = personal
            .iter()
            .filter(|p| p.chars().count() >= 3)
            .any(|p| lowered.contains(p.as_str()) || (p.contains(lowered.as_str())));
        if too_similar {
            return Err("Password is too similar to your username or email".into());
        }
        let distinct: std::collections::HashSet<char> = lowered.chars().collect();
        if distinct.len() < 5 {
            return Err("Password needs more variety: use at least 5 different characters".into());
        }
        Ok(Self(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What the registration form submits, field by field, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationInput {
    pub username: String,
    pub email: String,
    pub password: String,
    pub confirm_password: String,
    pub role: String,
}

#[derive(Debug, Clone)]
pub struct NewAccount {
    pub username: Username,
    pub email: Email,
    pub password: NewPassword,
    pub role: Role,
}

impl RegistrationInput {
    /// Every field's problem at once, so the form can mark them all.
    pub fn parse(&self) -> Result<NewAccount, Vec<FieldError>> {
        let mut errors = Vec::new();
        let username = Username::parse(&self.username)
            .map_err(|m| errors.push(FieldError::new("username", m)))
            .ok();
        let email = Email::parse(&self.email)
            .map_err(|m| errors.push(FieldError::new("email", m)))
            .ok();
        let password = NewPassword::parse(&self.password, Some(&self.username), Some(&self.email))
            .map_err(|m| errors.push(FieldError::new("password", m)))
            .ok();
        if self.password != self.confirm_password {
            errors.push(FieldError::new(
                "confirm_password",
                "Passwords do not match",
            ));
        }
        let role = Role::parse(&self.role)
            .map_err(|m| errors.push(FieldError::new("role", m)))
            .ok();
        match (username, email, password, role) {
            (Some(username), Some(email), Some(password), Some(role)) if errors.is_empty() => {
                Ok(NewAccount {
                    username,
                    email,
                    password,
                    role,
                })
            }
            _ => Err(errors),
        }
    }
}

/// What a confirmation link would confirm, shown before anyone confirms it: the
/// address, and the account that asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAddress {
    pub email: String,
    pub username: String,
}

/// The signed-in user as the UI sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: u64,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub status: AccountStatus,
    /// The address was confirmed through a link sent to it.
    pub email_verified: bool,
    pub second_factor: SecondFactor,
}

impl SessionUser {
    /// Where `/dashboard` sends this user.
    pub fn home(&self) -> &'static str {
        match (self.second_factor, self.status) {
            (SecondFactor::Pending, _) => SECOND_STEP_PAGE,
            (_, AccountStatus::Pending) | (_, AccountStatus::Disabled) => "/awaiting-approval",
            (_, AccountStatus::Closed) => "/",
            (SecondFactor::Missing, AccountStatus::Active) => TWO_FACTOR_PAGE,
            (_, AccountStatus::Active) => self.role.home(),
        }
    }
}

/// Where a login starts.
pub const LOGIN_PAGE: &str = "/login";
/// Where a login that still needs its second step continues.
pub const SECOND_STEP_PAGE: &str = "/login/second-step";
/// Where the second factor is set up and managed.
pub const TWO_FACTOR_PAGE: &str = "/profile/two-factor";

/// Where this login stands with the second factor (TOTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecondFactor {
    /// None set up, and the role does not require one (a customer who did not opt in).
    Off,
    /// Set up, and this login has not passed the second step: it reaches nothing else.
    Pending,
    /// Passed for this login.
    Passed,
    /// The role requires one and none is set up: only the account's own pages work.
    Missing,
}

/// The account's second factor as its profile page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoFactorStatus {
    pub enabled: bool,
    /// The role requires it (staff); it cannot be turned off, only reset by a manager.
    pub required: bool,
    pub recovery_codes_left: u32,
}

/// A TOTP secret being set up: shown once, confirmed with a code from the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnrolment {
    /// Base32, for typing into an authenticator by hand.
    pub secret: String,
    /// The `otpauth://` URI the QR code holds.
    pub uri: String,
    /// The QR code as an SVG document, rendered on the server.
    pub qr_svg: String,
}

/// Single-use recovery codes, shown once when issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCodes(pub Vec<String>);

/// Only same-site relative paths are followed after login, so `next` cannot send a
/// user to another site (`//evil.example`, `https://…`, `/\evil`). The login page
/// itself is no destination: a login that went back there would seem to have failed.
pub fn safe_next(next: Option<&str>) -> Option<String> {
    let next = next?.trim();
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        // Printable ASCII only: the path goes into a Location header as it is.
        && next.chars().all(|c| c.is_ascii_graphic() && c != '\\')
        && next.len() <= 512
        && !is_login_page(next);
    ok.then(|| next.to_string())
}

/// `/login` and its own steps (`/login/second-step`), with or without a query.
pub fn is_login_page(path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    path == LOGIN_PAGE || path.starts_with(&format!("{LOGIN_PAGE}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(Username::parse("  Alice_1 ").unwrap().as_str(), "Alice_1");
        assert_eq!(Username::parse("Alice").unwrap().key(), "alice");
        for bad in [
            "ab",
            "a".repeat(33).as_str(),
            "bad name",
            "_lead",
            "naïve",
            "x$y",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ").unwrap().as_str(),
            "ana@example.com"
        );
        assert!(Email::parse("first.last+tag@sub.example.co").is_ok());
        for bad in [
            "",
            "plain",
            "a@b",
            "a@b.c",
            "@example.com",
            "a..b@example.com",
            "a@-x.com",
            "a b@example.com",
            "a@exa_mple.com",
            ".a@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn password_policy() {
        assert!(
            NewPassword::parse("Paperclip-Harbor-42", Some("bob"), Some("bob@example.com")).is_ok()
        );
        assert_eq!(
            NewPassword::parse("short", None, None).unwrap_err(),
            "Password must be at least 12 characters"
        );
        assert!(
            NewPassword::parse(&"x".repeat(129), None, None)
                .unwrap_err()
                .contains("at most 128")
        );
        assert!(
            NewPassword::parse("margaret-2024-secret", Some("Margaret"), None)
                .unwrap_err()
                .contains("too similar")
        );
        assert!(
            NewPassword::parse(
                "jsmith-longer-pass",
                Some("other"),
                Some("jsmith@example.com")
            )
            .unwrap_err()
            .contains("too similar")
        );
        assert!(
            NewPassword::parse("aaaaaaaaaaaaaaaa", None, None)
                .unwrap_err()
                .contains("variety")
        );
        assert!(NewPassword::parse("tab\there-password", None, None).is_err());
        // 128 multi-byte characters are within the limit: it counts characters, not bytes.
        assert!(NewPassword::parse(&"äöüßéèàç".repeat(16), None, None).is_ok());
    }

    #[test]
    fn registration_reports_every_bad_field() {
        let input = RegistrationInput {
            username: "x".into(),
            email: "nope".into(),
            password: "short".into(),
            confirm_password: "other".into(),
            role: "admin".into(),
        };
        let errors = input.parse().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["username", "email", "password", "confirm_password", "role"]
        );
    }

    #[test]
    fn registration_parses_valid_input() {
        let input = RegistrationInput {
            username: "Carol".into(),
            email: "carol@example.com".into(),
            password: "Stapler-Lantern-77".into(),
            confirm_password: "Stapler-Lantern-77".into(),
            role: "technical_worker".into(),
        };
        let account = input.parse().unwrap();
        assert_eq!(account.role, Role::TechnicalWorker);
        assert_eq!(account.username.key(), "carol");
    }

    #[test]
    fn next_is_only_a_local_path() {
        assert_eq!(
            safe_next(Some("/worker?page=2")),
            Some("/worker?page=2".into())
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "/\tx",
            "javascript:alert(1)",
            "/login",
            "/login?next=/worker",
            "/login/second-step",
            "/caf\u{e9}",
            "/a b",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(safe_next(None), None);
    }

    #[test]
    fn pending_users_land_on_the_approval_page() {
        let mut user = SessionUser {
            id: 1,
            username: "w".into(),
            email: "w@example.com".into(),
            role: Role::TechnicalWorker,
            status: AccountStatus::Pending,
            email_verified: true,
            second_factor: SecondFactor::Missing,
        };
        assert_eq!(user.home(), "/awaiting-approval");
        user.status = AccountStatus::Active;
        assert_eq!(
            user.home(),
            TWO_FACTOR_PAGE,
            "staff set up a second factor first"
        );
        user.second_factor = SecondFactor::Pending;
        assert_eq!(user.home(), SECOND_STEP_PAGE);
        user.second_factor = SecondFactor::Passed;
        assert_eq!(user.home(), "/worker");
    }
}

/// One row of the auth audit log, for senior management.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: u64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub event: String,
    pub username: Option<String>,
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

/// A user as listed in user administration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: u64,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub status: AccountStatus,
    pub email_verified: bool,
    /// A second factor is set up.
    pub two_factor: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_login_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A page of user administration's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersPage {
    pub users: Vec<UserSummary>,
    /// Users matching the search and status, over all pages.
    pub matching: u64,
    pub page: u32,
    pub pages: u32,
}

/// Users a page of user administration lists.
pub const USERS_PAGE_SIZE: u32 = 50;

/// One of the signed-in user's active sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// An opaque handle for revoking it (a hash, not the session key itself).
    pub handle: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub current: bool,
}
