//! Passkeys (WebAuthn), through webauthn-rs: adding and removing them on the profile,
//! and signing in with one alone.

pub mod ceremonies;
pub mod registration;
mod relying_party;
pub mod sign_in;

pub use ceremonies::prune;
pub use relying_party::RelyingParty;
