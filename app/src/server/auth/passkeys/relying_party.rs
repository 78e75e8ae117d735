//! The portal as passkeys know it: the "relying party" a passkey is bound to.

use crate::model::AppError;
use std::sync::Arc;
use std::time::Duration;
use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

/// How long a browser has to finish a ceremony (the authenticator's prompt included).
pub const CEREMONY_LIFETIME: Duration = Duration::from_secs(5 * 60);

const NAME: &str = "Supply Co. sales portal";

/// Passkeys are bound to a domain name: browsers refuse an IP address as one. A
/// portal whose public address is a loopback address (development, the test suite)
/// offers passkeys at `localhost` on the same port; one reached by any other IP
/// address offers none, and says so.
#[derive(Clone)]
pub struct RelyingParty(Option<Arc<Site>>);

struct Site {
    webauthn: Webauthn,
    origin: String,
}

impl RelyingParty {
    /// The relying party for a site whose users reach it at `public_url`.
    pub fn for_site(public_url: &str) -> Result<Self, String> {
        let mut origin =
            Url::parse(public_url).map_err(|e| format!("PUBLIC_URL is not a URL: {e}"))?;
        match origin.host() {
            Some(url::Host::Domain(_)) => {}
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => set_localhost(&mut origin)?,
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => set_localhost(&mut origin)?,
            _ => return Ok(Self(None)),
        }
        origin.set_path("");
        let rp_id = origin
            .host_str()
            .ok_or_else(|| "PUBLIC_URL has no host".to_string())?
            .to_string();
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|b| b.rp_name(NAME).timeout(CEREMONY_LIFETIME).build())
            .map_err(|e| format!("passkeys cannot be offered at {origin}: {e}"))?;
        Ok(Self(Some(Arc::new(Site {
            webauthn,
            origin: origin.origin().ascii_serialization(),
        }))))
    }

    /// The WebAuthn verifier, or the reason passkeys are not offered here.
    pub fn webauthn(&self) -> Result<&Webauthn, AppError> {
        self.0.as_ref().map(|s| &s.webauthn).ok_or_else(|| {
            AppError::Conflict(
                "Passkeys need the portal to be opened at a domain name, not an IP address.".into(),
            )
        })
    }

    /// The address passkeys work at, if they work at all.
    pub fn origin(&self) -> Option<String> {
        self.0.as_ref().map(|s| s.origin.clone())
    }
}

fn set_localhost(url: &mut Url) -> Result<(), String> {
    url.set_host(Some("localhost"))
        .map_err(|e| format!("cannot offer passkeys at localhost: {e}"))
}

#[cfg(test)]
mod tests {
    use super::RelyingParty;

    #[test]
    fn a_domain_is_its_own_relying_party_and_loopback_becomes_localhost() {
        let site = RelyingParty::for_site("https://sales.example.com/").expect("valid");
        assert_eq!(site.origin().as_deref(), Some("https://sales.example.com"));
        let dev = RelyingParty::for_site("http://127.0.0.1:3000").expect("valid");
        assert_eq!(dev.origin().as_deref(), Some("http://localhost:3000"));
        let v6 = RelyingParty::for_site("http://[::1]:8080").expect("valid");
        assert_eq!(v6.origin().as_deref(), Some("http://localhost:8080"));
    }

    #[test]
    fn an_address_that_is_not_loopback_offers_no_passkeys() {
        let lan = RelyingParty::for_site("http://192.168.1.20:3000").expect("valid");
        assert_eq!(lan.origin(), None);
        assert!(lan.webauthn().is_err());
        assert!(RelyingParty::for_site("not a url").is_err());
    }
}
