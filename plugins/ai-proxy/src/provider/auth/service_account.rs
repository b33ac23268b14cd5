//! A Google service-account key file (`{"type": "service_account", "client_email",
//! "private_key", "private_key_id", "token_uri", ...}`), with its RSA key parsed once at
//! config time. The key never appears in `Debug` output or errors.

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use serde_json::Value;

use super::AuthError;

/// Google's token endpoint, used when the key file names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A parsed service-account key.
pub struct ServiceAccount {
    /// The account (`iss` of the assertion).
    pub client_email: String,
    /// The key id (`kid` of the JWT header), when the file has one.
    pub key_id: Option<String>,
    /// The token endpoint (`aud` of the assertion).
    pub token_uri: String,
    /// The signing key.
    pub(crate) key: RsaPrivateKey,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

impl ServiceAccount {
    /// Parse a key file given as a JSON object or as the file's text.
    pub fn from_json(v: &Value) -> Result<Self, AuthError> {
        let parsed;
        let v = match v {
            Value::String(text) => {
                parsed = serde_json::from_str::<Value>(text)
                    .map_err(|e| AuthError::Key(format!("not JSON: {e}")))?;
                &parsed
            }
            other => other,
        };
        if !v.is_object() {
            return Err(AuthError::Key("must be a JSON object".into()));
        }
        if let Some(kind) = field(v, "type").filter(|k| *k != "service_account") {
            return Err(AuthError::Key(format!(
                "type is {kind:?}, expected \"service_account\""
            )));
        }
        let email = field(v, "client_email")
            .ok_or_else(|| AuthError::Key("client_email is missing".into()))?;
        let pem = field(v, "private_key")
            .ok_or_else(|| AuthError::Key("private_key is missing".into()))?;
        let token_uri = field(v, "token_uri").unwrap_or(DEFAULT_TOKEN_URI);
        if !token_uri.starts_with("https://") && !token_uri.starts_with("http://") {
            return Err(AuthError::Key(format!(
                "token_uri {token_uri:?} is not an http(s) URL"
            )));
        }
        Ok(Self {
            client_email: email.to_owned(),
            key_id: field(v, "private_key_id").map(str::to_owned),
            token_uri: token_uri.to_owned(),
            key: parse_key(pem)?,
        })
    }
}

/// A PKCS#8 (`BEGIN PRIVATE KEY`, what Google issues) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM.
fn parse_key(pem: &str) -> Result<RsaPrivateKey, AuthError> {
    // Key files pasted through YAML sometimes keep literal `\n` sequences.
    let pem = pem.replace("\\n", "\n");
    let key = if pem.contains("BEGIN RSA PRIVATE KEY") {
        RsaPrivateKey::from_pkcs1_pem(&pem).map_err(|e| e.to_string())
    } else {
        RsaPrivateKey::from_pkcs8_pem(&pem).map_err(|e| e.to_string())
    };
    key.map_err(|e| AuthError::Key(format!("private_key is not an RSA PEM key ({e})")))
}
