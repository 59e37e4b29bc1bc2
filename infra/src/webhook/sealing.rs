//! Webhook signing secrets at rest: envelope encryption with keys from configuration.
//!
//! Each secret gets a fresh random data key; the secret is sealed with the data key, and
//! the data key with the active key-encryption key (both XChaCha20-Poly1305, random
//! 24-byte nonces). The stored text names the key that wraps the data key:
//!
//! ```text
//! sealed:v1:<key id>:<base64 nonce ‖ wrapped data key>:<base64 nonce ‖ sealed secret>
//! ```
//!
//! Keys are configured as `id:base64(32 bytes)`, comma-separated, the first being the
//! one new secrets are sealed with; the others still open what they sealed. Rotation:
//! put a new key first, run `commerce webhooks reseal` (it re-wraps every data key with
//! the first key and seals secrets still stored in clear), then drop the old key.
//! Without keys, secrets are stored in clear, as before; text sealed under a key that is
//! no longer configured cannot be opened and the delivery fails loudly.
//!
//! Why by hand: sealing is two AEAD calls from a well-kept crate (`chacha20poly1305`);
//! what is written here is only the key list and the stored format around them.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;

use super::WebhookSecret;

const PREFIX: &str = "sealed:v1:";
const NONCE: usize = 24;
const KEY: usize = 32;

/// Why a stored secret could not be opened, or keys could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("webhook secret keys: {0}")]
    Config(String),
    #[error("the secret is sealed with key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("the stored secret is damaged or was sealed with another key of that id")]
    Damaged,
}

/// The configured key-encryption keys; the first seals, all open.
#[derive(Clone, Default)]
pub struct SecretKeys {
    keys: Vec<(String, Key)>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SecretKeys").field("ids", &ids).finish()
    }
}

impl SecretKeys {
    /// Parses `id:base64key[,id:base64key…]`; an empty text means no keys (secrets in
    /// clear). Ids are `[A-Za-z0-9_-]`, unique; keys are 32 bytes.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let mut keys: Vec<(String, Key)> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, key) = entry.split_once(':').ok_or_else(|| {
                SealError::Config(format!("`{id}` is not id:base64key", id = redact(entry)))
            })?;
            let valid_id = !id.is_empty()
                && id.len() <= 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_id {
                return Err(SealError::Config(format!(
                    "key id `{id}` must be 1 to 32 of [A-Za-z0-9_-]"
                )));
            }
            if keys.iter().any(|(known, _)| known == id) {
                return Err(SealError::Config(format!("key id `{id}` appears twice")));
            }
            let bytes = STANDARD
                .decode(key)
                .ok()
                .filter(|b| b.len() == KEY)
                .ok_or_else(|| {
                    SealError::Config(format!("key `{id}` must be base64 of {KEY} bytes"))
                })?;
            keys.push((id.to_string(), *Key::from_slice(&bytes)));
        }
        Ok(Self { keys })
    }

    /// Whether any key is configured (secrets are sealed).
    pub fn is_sealing(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The text to store for `secret`: sealed with the first key, or the secret itself
    /// when no key is configured.
    pub fn seal(&self, secret: &WebhookSecret) -> String {
        let Some((id, kek)) = self.keys.first() else {
            return secret.expose().to_string();
        };
        let mut data_key = [0u8; KEY];
        rand::rng().fill_bytes(&mut data_key);
        let wrapped = encrypt(kek, &data_key, id.as_bytes());
        let sealed = encrypt(
            Key::from_slice(&data_key),
            secret.expose().as_bytes(),
            id.as_bytes(),
        );
        format!(
            "{PREFIX}{id}:{}:{}",
            STANDARD.encode(wrapped),
            STANDARD.encode(sealed)
        )
    }

    /// The secret stored as `stored` (sealed, or in clear from before keys were set).
    pub fn open(&self, stored: &str) -> Result<WebhookSecret, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return WebhookSecret::parse(stored).map_err(|_| SealError::Damaged);
        };
        let mut parts = rest.splitn(3, ':');
        let (Some(id), Some(wrapped), Some(sealed)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Damaged);
        };
        let kek = self
            .keys
            .iter()
            .find(|(known, _)| known == id)
            .map(|(_, key)| key)
            .ok_or_else(|| SealError::UnknownKey(id.to_string()))?;
        let decode = |text: &str| STANDARD.decode(text).map_err(|_| SealError::Damaged);
        let data_key = decrypt(kek, &decode(wrapped)?, id.as_bytes())?;
        if data_key.len() != KEY {
            return Err(SealError::Damaged);
        }
        let plain = decrypt(Key::from_slice(&data_key), &decode(sealed)?, id.as_bytes())?;
        let text = String::from_utf8(plain).map_err(|_| SealError::Damaged)?;
        WebhookSecret::parse(&text).map_err(|_| SealError::Damaged)
    }

    /// Whether `stored` should be sealed again: in clear while keys exist, or wrapped by
    /// a key other than the first.
    pub fn needs_reseal(&self, stored: &str) -> bool {
        let Some((active, _)) = self.keys.first() else {
            return false;
        };
        match stored.strip_prefix(PREFIX) {
            None => true,
            Some(rest) => rest.split(':').next() != Some(active.as_str()),
        }
    }
}

/// `nonce ‖ ciphertext` of `plain` under `key`, bound to `aad` (the key id, so a sealed
/// text cannot be relabelled to another key).
fn encrypt(key: &Key, plain: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE];
    rand::rng().fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new(key);
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .expect("XChaCha20-Poly1305 encrypts any message of this size");
    [nonce.as_slice(), &sealed].concat()
}

fn decrypt(key: &Key, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE {
        return Err(SealError::Damaged);
    }
    let (nonce, body) = sealed.split_at(NONCE);
    XChaCha20Poly1305::new(key)
        .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| SealError::Damaged)
}

/// A configuration entry shown in an error without its key material.
fn redact(entry: &str) -> String {
    entry.chars().take(8).collect::<String>() + "…"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; KEY])
    }

    #[test]
    fn a_sealed_secret_opens_and_shows_nothing_of_itself() {
        let keys = SecretKeys::parse(&format!("k1:{}", key(1))).unwrap();
        let secret = WebhookSecret::generate();
        let stored = keys.seal(&secret);
        assert!(stored.starts_with("sealed:v1:k1:"), "{stored}");
        let b64 = secret.expose().trim_start_matches("whsec_");
        assert!(!stored.contains(b64));
        assert_eq!(keys.open(&stored).unwrap().expose(), secret.expose());
        // Fresh data key and nonces each time.
        assert_ne!(keys.seal(&secret), stored);
    }

    #[test]
    fn rotation_opens_old_seals_and_reseals_to_the_first_key() {
        let old = SecretKeys::parse(&format!("old:{}", key(1))).unwrap();
        let secret = WebhookSecret::generate();
        let stored = old.seal(&secret);
        let rotated = SecretKeys::parse(&format!("new:{},old:{}", key(2), key(1))).unwrap();
        assert_eq!(rotated.open(&stored).unwrap().expose(), secret.expose());
        assert!(rotated.needs_reseal(&stored));
        let resealed = rotated.seal(&rotated.open(&stored).unwrap());
        assert!(!rotated.needs_reseal(&resealed));
        let only_new = SecretKeys::parse(&format!("new:{}", key(2))).unwrap();
        assert_eq!(only_new.open(&resealed).unwrap().expose(), secret.expose());
        assert_eq!(
            only_new.open(&stored).unwrap_err(),
            SealError::UnknownKey("old".into())
        );
    }

    #[test]
    fn clear_secrets_still_open_and_are_marked_for_sealing() {
        let secret = WebhookSecret::generate();
        let none = SecretKeys::default();
        assert_eq!(none.seal(&secret), secret.expose());
        assert!(!none.needs_reseal(secret.expose()));
        let keys = SecretKeys::parse(&format!("k:{}", key(3))).unwrap();
        assert_eq!(
            keys.open(secret.expose()).unwrap().expose(),
            secret.expose()
        );
        assert!(keys.needs_reseal(secret.expose()));
    }

    #[test]
    fn tampering_wrong_keys_and_relabelling_are_refused() {
        let keys = SecretKeys::parse(&format!("a:{},b:{}", key(1), key(2))).unwrap();
        let stored = keys.seal(&WebhookSecret::generate());
        let mut bytes = stored.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            keys.open(&String::from_utf8(bytes).unwrap()).unwrap_err(),
            SealError::Damaged
        );
        // Same id, another key.
        let impostor = SecretKeys::parse(&format!("a:{}", key(9))).unwrap();
        assert_eq!(impostor.open(&stored).unwrap_err(), SealError::Damaged);
        // Relabelled to the other configured key.
        let relabelled = stored.replacen("sealed:v1:a:", "sealed:v1:b:", 1);
        assert_eq!(keys.open(&relabelled).unwrap_err(), SealError::Damaged);
    }

    #[test]
    fn bad_key_configuration_is_refused_without_echoing_keys() {
        for bad in [
            "nocolon".to_string(),
            format!("bad id:{}", key(1)),
            "k:c2hvcnQ=".to_string(),
            format!("k:{},k:{}", key(1), key(2)),
        ] {
            let err = SecretKeys::parse(&bad).unwrap_err().to_string();
            assert!(!err.contains(&key(1)), "{err}");
        }
        assert!(!SecretKeys::parse("").unwrap().is_sealing());
    }
}
