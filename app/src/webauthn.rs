//! The browser's side of a passkey ceremony: `navigator.credentials` called with the
//! options the server made, and the authenticator's answer handed back as JSON. Both
//! conversions are the browser's own (WebAuthn Level 3: `parse…OptionsFromJSON` and
//! `toJSON`), so no binary juggling is needed here.

/// Asks an authenticator for a new passkey. `options` is the server's JSON.
pub async fn create(options: &str) -> Result<String, String> {
    ceremony(options, "parseCreationOptionsFromJSON", "create").await
}

/// Asks an authenticator to sign in with one of the passkeys it keeps for the site.
pub async fn get(options: &str) -> Result<String, String> {
    ceremony(options, "parseRequestOptionsFromJSON", "get").await
}

const UNSUPPORTED: &str =
    "This browser cannot use passkeys. Please use a current version of your browser.";

#[cfg(feature = "hydrate")]
async fn ceremony(options: &str, parse: &str, method: &str) -> Result<String, String> {
    use js_sys::{Function, JSON, Object, Promise, Reflect};
    use wasm_bindgen::{JsCast, JsValue};

    let window: JsValue = web_sys::window().ok_or(UNSUPPORTED)?.into();
    let get = |target: &JsValue, name: &str| Reflect::get(target, &JsValue::from_str(name));
    let function = |target: &JsValue, name: &str| {
        get(target, name)
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok())
    };
    let class = get(&window, "PublicKeyCredential").map_err(|_| UNSUPPORTED)?;
    let parse = function(&class, parse).ok_or(UNSUPPORTED)?;
    let json = JSON::parse(options).map_err(|_| UNSUPPORTED.to_string())?;
    let rp_id = rp_id(&json);
    let public_key = get(&json, "publicKey")
        .and_then(|p| parse.call1(&class, &p))
        .map_err(|e| explain(&e, &rp_id))?;
    let argument = Object::new();
    Reflect::set(&argument, &JsValue::from_str("publicKey"), &public_key)
        .map_err(|e| explain(&e, &rp_id))?;
    let credentials = get(&window, "navigator")
        .and_then(|n| get(&n, "credentials"))
        .map_err(|_| UNSUPPORTED)?;
    let call = function(&credentials, method).ok_or(UNSUPPORTED)?;
    let promise = call
        .call1(&credentials, &argument)
        .and_then(|p| p.dyn_into::<Promise>())
        .map_err(|e| explain(&e, &rp_id))?;
    let credential = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(|e| explain(&e, &rp_id))?;
    if credential.is_null() || credential.is_undefined() {
        return Err(CANCELLED.into());
    }
    let to_json = function(&credential, "toJSON").ok_or(UNSUPPORTED)?;
    let answer = to_json
        .call0(&credential)
        .map_err(|e| explain(&e, &rp_id))?;
    JSON::stringify(&answer)
        .map(String::from)
        .map_err(|e| explain(&e, &rp_id))
}

#[cfg(not(feature = "hydrate"))]
async fn ceremony(_options: &str, _parse: &str, _method: &str) -> Result<String, String> {
    Err(UNSUPPORTED.into())
}

#[cfg(feature = "hydrate")]
const CANCELLED: &str = "The passkey request was cancelled or timed out.";

/// The domain the options bind the passkey to: `rp.id` when creating, `rpId` when
/// signing in.
#[cfg(feature = "hydrate")]
fn rp_id(options: &wasm_bindgen::JsValue) -> String {
    let get = |target: &wasm_bindgen::JsValue, name: &str| {
        js_sys::Reflect::get(target, &wasm_bindgen::JsValue::from_str(name)).ok()
    };
    let public_key = get(options, "publicKey");
    public_key
        .as_ref()
        .and_then(|p| get(p, "rpId"))
        .or_else(|| {
            public_key
                .as_ref()
                .and_then(|p| get(p, "rp"))
                .and_then(|rp| get(&rp, "id"))
        })
        .and_then(|id| id.as_string())
        .unwrap_or_default()
}

/// A browser's refusal (a `DOMException`) in words a person can act on.
#[cfg(feature = "hydrate")]
fn explain(error: &wasm_bindgen::JsValue, rp_id: &str) -> String {
    let name = js_sys::Reflect::get(error, &wasm_bindgen::JsValue::from_str("name"))
        .ok()
        .and_then(|n| n.as_string())
        .unwrap_or_default();
    match name.as_str() {
        "NotAllowedError" | "AbortError" => CANCELLED.into(),
        "InvalidStateError" => "This device already holds a passkey for your account.".into(),
        "SecurityError" => format!(
            "Passkeys for this portal work only at {rp_id}: open the portal at that address to use one."
        ),
        "NotSupportedError" => {
            "None of your authenticators can make a passkey this portal accepts.".into()
        }
        _ => UNSUPPORTED.into(),
    }
}
