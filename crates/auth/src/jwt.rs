//! Registry tokens: Ed25519-signed JWTs as the Docker token specification
//! describes them. Every token names its key (`kid`); verification accepts
//! any key in the set, signing uses the newest, so rotating adds a key and
//! tokens already issued stay valid until they expire.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use crate::{AuthError, Result};

/// One entry of the `access` claim: what the bearer may do to one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryClaims {
    pub iss: String,
    /// The account name.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<AccessEntry>,
    /// The API token the bearer logged in with, for the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The keys that sign and verify registry tokens, oldest first.
pub struct TokenKeys {
    keys: Vec<Key>,
    issuer: String,
}

impl TokenKeys {
    /// Keys as `(kid, PKCS#8 document)`, oldest first; the last one signs.
    pub fn new(issuer: &str, pkcs8: &[(String, Vec<u8>)]) -> Result<TokenKeys> {
        if pkcs8.is_empty() {
            return Err(AuthError::Key("no signing key".into()));
        }
        let keys = pkcs8
            .iter()
            .map(|(kid, doc)| {
                let pair = Ed25519KeyPair::from_pkcs8(doc).map_err(|e| AuthError::Key(format!("{kid}: {e}")))?;
                Ok(Key {
                    kid: kid.clone(),
                    encoding: EncodingKey::from_ed_der(doc),
                    decoding: DecodingKey::from_ed_der(pair.public_key().as_ref()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TokenKeys {
            keys,
            issuer: issuer.to_string(),
        })
    }

    /// A new Ed25519 key as a PKCS#8 document.
    pub fn generate_pkcs8() -> Vec<u8> {
        Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .expect("the OS has randomness")
            .as_ref()
            .to_vec()
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn current_kid(&self) -> &str {
        &self.keys.last().expect("never empty").kid
    }

    pub fn sign(&self, claims: &RegistryClaims) -> Result<String> {
        let key = self.keys.last().expect("never empty");
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| AuthError::InvalidJwt(e.to_string()))
    }

    /// The claims of `token` if one of our keys signed it for `audience`
    /// and it is within its lifetime.
    pub fn verify(&self, token: &str, audience: &str) -> Result<RegistryClaims> {
        let bad = |e: jsonwebtoken::errors::Error| AuthError::InvalidJwt(e.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(bad)?;
        let kid = header.kid.ok_or_else(|| AuthError::InvalidJwt("no key id".into()))?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| AuthError::InvalidJwt(format!("unknown key {kid:?}")))?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[audience]);
        v.set_issuer(&[&self.issuer]);
        v.leeway = 5;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        Ok(jsonwebtoken::decode::<RegistryClaims>(token, &key.decoding, &v)
            .map_err(bad)?
            .claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_from_now: i64) -> RegistryClaims {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        RegistryClaims {
            iss: "portcullis".into(),
            sub: "alice".into(),
            aud: "registry".into(),
            exp: now + exp_from_now,
            nbf: now - 1,
            iat: now,
            jti: "1".into(),
            access: vec![AccessEntry {
                kind: "repository".into(),
                name: "acme/app".into(),
                actions: vec!["pull".into()],
            }],
            tid: None,
        }
    }

    #[test]
    fn sign_verify_rotate_tamper() {
        let k1 = ("k1".to_string(), TokenKeys::generate_pkcs8());
        let k2 = ("k2".to_string(), TokenKeys::generate_pkcs8());
        let old = TokenKeys::new("portcullis", std::slice::from_ref(&k1)).unwrap();
        let t1 = old.sign(&claims(300)).unwrap();
        assert_eq!(old.verify(&t1, "registry").unwrap(), claims_of(&old, &t1));
        // After rotation the old token still verifies; new ones use k2.
        let rotated = TokenKeys::new("portcullis", &[k1, k2.clone()]).unwrap();
        assert!(rotated.verify(&t1, "registry").is_ok());
        assert_eq!(rotated.current_kid(), "k2");
        let t2 = rotated.sign(&claims(300)).unwrap();
        assert!(old.verify(&t2, "registry").is_err(), "unknown key");
        // Wrong audience, expired, tampered, other key with the same kid.
        assert!(rotated.verify(&t2, "elsewhere").is_err());
        assert!(rotated
            .verify(&rotated.sign(&claims(-60)).unwrap(), "registry")
            .is_err());
        let mut parts: Vec<String> = t2.split('.').map(str::to_string).collect();
        let mut c = claims(300);
        c.access[0].actions.push("push".into());
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&c).unwrap(),
        );
        assert!(rotated.verify(&parts.join("."), "registry").is_err());
        let impostor = TokenKeys::new("portcullis", &[("k2".into(), TokenKeys::generate_pkcs8())]).unwrap();
        assert!(rotated
            .verify(&impostor.sign(&claims(300)).unwrap(), "registry")
            .is_err());
    }

    fn claims_of(keys: &TokenKeys, t: &str) -> RegistryClaims {
        keys.verify(t, "registry").unwrap()
    }
}
