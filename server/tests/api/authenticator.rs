//! A software authenticator, for driving passkey ceremonies through the public
//! endpoints the way a browser does: it reads the options the server made, signs with
//! a P-256 key of its own, and answers with the JSON of `PublicKeyCredential.toJSON()`.
//! It keeps one discoverable credential and reports the user as verified.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const USER_PRESENT: u8 = 0x01;
const USER_VERIFIED: u8 = 0x04;
const ATTESTED_CREDENTIAL: u8 = 0x40;

pub struct Authenticator {
    origin: String,
    key: SigningKey,
    credential_id: Vec<u8>,
    /// The user handle stored with the credential at registration.
    user_handle: Vec<u8>,
    counter: u32,
}

impl Authenticator {
    /// An authenticator in a browser at `origin` (`http://localhost:<port>`).
    pub fn new(origin: &str) -> Self {
        let key = loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                break key;
            }
        };
        Self {
            origin: origin.to_string(),
            key,
            credential_id: rand::random::<[u8; 16]>().to_vec(),
            user_handle: Vec::new(),
            counter: 0,
        }
    }

    /// Answers `navigator.credentials.create` with the server's options (JSON text).
    pub fn create(&mut self, options: &str) -> String {
        let options: Value = serde_json::from_str(options).expect("options are JSON");
        let public_key = &options["publicKey"];
        let rp_id = public_key["rp"]["id"].as_str().expect("an rp id");
        self.user_handle = decode(&public_key["user"]["id"]);
        let client_data = self.client_data("webauthn.create", &public_key["challenge"]);
        self.counter += 1;
        let point = self.key.verifying_key().to_encoded_point(false);
        let cose_key = Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),  // kty: EC2
            (Cbor::Int(3), Cbor::Int(-7)), // alg: ES256
            (Cbor::Int(-1), Cbor::Int(1)), // crv: P-256
            (Cbor::Int(-2), Cbor::Bytes(point.x().expect("x").to_vec())),
            (Cbor::Int(-3), Cbor::Bytes(point.y().expect("y").to_vec())),
        ]);
        let mut auth_data =
            self.auth_data(rp_id, USER_PRESENT | USER_VERIFIED | ATTESTED_CREDENTIAL);
        auth_data.extend([0u8; 16]); // AAGUID: none
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(cose_key.encode());
        let attestation = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]);
        json!({
            "id": B64.encode(&self.credential_id),
            "rawId": B64.encode(&self.credential_id),
            "type": "public-key",
            "response": {
                "attestationObject": B64.encode(attestation.encode()),
                "clientDataJSON": B64.encode(client_data),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        })
        .to_string()
    }

    /// Answers `navigator.credentials.get` with the server's options (JSON text).
    pub fn get(&mut self, options: &str) -> String {
        let options: Value = serde_json::from_str(options).expect("options are JSON");
        let public_key = &options["publicKey"];
        let rp_id = public_key["rpId"].as_str().expect("an rp id");
        let client_data = self.client_data("webauthn.get", &public_key["challenge"]);
        self.counter += 1;
        let auth_data = self.auth_data(rp_id, USER_PRESENT | USER_VERIFIED);
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        json!({
            "id": B64.encode(&self.credential_id),
            "rawId": B64.encode(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": B64.encode(auth_data),
                "clientDataJSON": B64.encode(client_data),
                "signature": B64.encode(signature.to_der().as_bytes()),
                "userHandle": B64.encode(&self.user_handle),
            },
            "clientExtensionResults": {},
        })
        .to_string()
    }

    fn client_data(&self, kind: &str, challenge: &Value) -> Vec<u8> {
        json!({
            "type": kind,
            "challenge": challenge.as_str().expect("a challenge"),
            "origin": self.origin,
            "crossOrigin": false,
        })
        .to_string()
        .into_bytes()
    }

    fn auth_data(&self, rp_id: &str, flags: u8) -> Vec<u8> {
        let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
        data.push(flags);
        data.extend(self.counter.to_be_bytes());
        data
    }
}

fn decode(value: &Value) -> Vec<u8> {
    B64.decode(value.as_str().expect("base64url text"))
        .expect("base64url")
}

/// The few CBOR items an attestation needs (RFC 8949).
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
    Map(Vec<(Cbor, Cbor)>),
}

impl Cbor {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Int(n) if *n >= 0 => head(out, 0, *n as u64),
            Cbor::Int(n) => head(out, 1, (-1 - *n) as u64),
            Cbor::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend(b);
            }
            Cbor::Text(t) => {
                head(out, 3, t.len() as u64);
                out.extend(t.as_bytes());
            }
            Cbor::Map(pairs) => {
                head(out, 5, pairs.len() as u64);
                for (k, v) in pairs {
                    k.write(out);
                    v.write(out);
                }
            }
        }
    }
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let major = major << 5;
    match n {
        0..=23 => out.push(major | n as u8),
        24..=0xff => out.extend([major | 24, n as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend((n as u16).to_be_bytes());
        }
        _ => {
            out.push(major | 26);
            out.extend((n as u32).to_be_bytes());
        }
    }
}
