//! Passkeys as the UI and the server both see them.

use serde::{Deserialize, Serialize};

/// How many passkeys one account may keep: enough for a phone, a laptop, a security
/// key and their replacements.
pub const PASSKEYS_MAX: usize = 10;

/// The name its owner gives a passkey ("Work laptop"), to tell them apart when removing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyName(String);

impl PasskeyName {
    pub const MAX: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("Give the passkey a name, such as \u{201c}Work laptop\u{201d}".into());
        }
        if name.chars().count() > Self::MAX {
            return Err(format!(
                "A passkey's name may be at most {} characters",
                Self::MAX
            ));
        }
        if name.chars().any(char::is_control) {
            return Err("A passkey's name may not contain control characters".into());
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One of the signed-in user's passkeys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeySummary {
    pub id: u64,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The signed-in user's passkeys, and where passkeys can be used at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passkeys {
    pub keys: Vec<PasskeySummary>,
    /// The address passkeys work at. Browsers bind a passkey to a domain name, never
    /// to an IP address: a portal reached at `127.0.0.1` offers them at `localhost`.
    pub origin: Option<String>,
}

/// A ceremony the browser is to carry out with an authenticator: the token that
/// finishes it (on any instance), and the options for `navigator.credentials`, as the
/// JSON of WebAuthn Level 3 (`PublicKeyCredential.parse…OptionsFromJSON`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyChallenge {
    pub ceremony: String,
    pub options: String,
}

#[cfg(test)]
mod tests {
    use super::PasskeyName;

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(
            PasskeyName::parse("  Work laptop ").map(|n| n.as_str().to_string()),
            Ok("Work laptop".to_string())
        );
        assert!(PasskeyName::parse("   ").is_err());
        assert!(PasskeyName::parse(&"é".repeat(64)).is_ok());
        assert!(PasskeyName::parse(&"é".repeat(65)).is_err());
        assert!(PasskeyName::parse("tab\there").is_err());
    }
}
