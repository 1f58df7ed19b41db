//! API tokens for machines: `pct_<id>_<secret>`. The id finds the row; only
//! a SHA-256 of the secret is stored, and it is compared in constant time.
//! The secret has 256 bits of entropy, so a fast hash is enough (a slow
//! password hash would only make every CI request slow).

use base64::Engine;
use subtle::ConstantTimeEq;

use crate::{AuthError, Result};

const PREFIX: &str = "pct_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Public, stored in clear: names the token in lists and audit records.
    pub id: String,
    pub secret: String,
}

impl ApiToken {
    pub fn generate() -> ApiToken {
        ApiToken {
            id: hex::encode(random_bytes::<8>()),
            secret: random_b64(32),
        }
    }

    /// Parses what a client presents; `None` if it is not shaped like a token
    /// (it may then be a password).
    pub fn parse(s: &str) -> Option<ApiToken> {
        let (id, secret) = s.strip_prefix(PREFIX)?.split_once('_')?;
        let ok = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && secret.len() >= 32;
        ok.then(|| ApiToken {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The string shown to the user, once.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, self.secret)
    }

    /// What the database keeps.
    pub fn secret_hash(&self) -> String {
        hex::encode(ring::digest::digest(&ring::digest::SHA256, self.secret.as_bytes()))
    }

    /// Whether this token's secret is the one `stored_hash` was made from.
    pub fn matches(&self, stored_hash: &str) -> bool {
        self.secret_hash().as_bytes().ct_eq(stored_hash.as_bytes()).into()
    }

    pub fn parse_strict(s: &str) -> Result<ApiToken> {
        Self::parse(s).ok_or(AuthError::BadToken)
    }
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).expect("the OS has randomness");
    b
}

pub(crate) fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).expect("the OS has randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_matching() {
        let t = ApiToken::generate();
        let shown = t.reveal();
        let back = ApiToken::parse(&shown).unwrap();
        assert_eq!(back, t);
        assert!(back.matches(&t.secret_hash()));
        let other = ApiToken::generate();
        assert!(!other.matches(&t.secret_hash()));
    }

    #[test]
    fn not_tokens() {
        for s in [
            "",
            "pct_",
            "hunter2",
            "pct_zz_abc",
            "pct_0123456789abcdef_short",
            "xyz_0123456789abcdef_",
        ] {
            assert_eq!(ApiToken::parse(s), None, "{s}");
        }
    }
}
