//! Private keys as cosign keeps them: `cosign generate-key-pair` writes a
//! PEM block `ENCRYPTED SIGSTORE PRIVATE KEY` (older: `ENCRYPTED COSIGN
//! PRIVATE KEY`) whose body is JSON: scrypt parameters and salt, a NaCl
//! secretbox nonce, and the PKCS#8 key sealed with the derived key. An
//! unencrypted PKCS#8 `PRIVATE KEY` block is taken too.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use serde::Deserialize;

use crate::{pem_block, SignError, SigningKey};

/// scrypt memory is 128·r·N bytes: refuse files that ask for more than
/// this, so a hostile key file cannot exhaust memory (cosign's own are 32 MiB).
const MAX_SCRYPT_BYTES: u64 = 256 << 20;

#[derive(Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// A signing key from a cosign key file (or PKCS#8 PEM) and its password;
/// returns the key and its PKCS#8 bytes (to seal at rest).
pub fn read_private_key(pem: &str, password: &[u8]) -> Result<(SigningKey, Vec<u8>), SignError> {
    let (label, der) = pem_block(pem).ok_or_else(|| SignError::BadKey("no PEM block".into()))?;
    let pkcs8 = match label.as_str() {
        "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => decrypt(&der, password)?,
        "PRIVATE KEY" => der,
        other => {
            return Err(SignError::BadKey(format!(
                "a {other} block; expected a cosign key file (ENCRYPTED SIGSTORE PRIVATE KEY) or PKCS#8 (PRIVATE KEY)"
            )))
        }
    };
    Ok((SigningKey::from_pkcs8(&pkcs8)?, pkcs8))
}

fn decrypt(body: &[u8], password: &[u8]) -> Result<Vec<u8>, SignError> {
    let bad = |why: &str| SignError::BadKey(format!("cosign key file: {why}"));
    let e: Envelope = serde_json::from_slice(body).map_err(|e| bad(&e.to_string()))?;
    if e.kdf.name != "scrypt" || e.cipher.name != "nacl/secretbox" {
        return Err(bad(&format!("unsupported {} / {}", e.kdf.name, e.cipher.name)));
    }
    let KdfParams { n, r, p } = e.kdf.params;
    if !n.is_power_of_two() || n < 2 || p == 0 || p > 16 || r == 0 || 128 * (r as u64) * n > MAX_SCRYPT_BYTES {
        return Err(bad(&format!("scrypt parameters N={n} r={r} p={p} out of range")));
    }
    let params = scrypt::Params::new(n.trailing_zeros() as u8, r, p).map_err(|e| bad(&e.to_string()))?;
    let salt = B64.decode(e.kdf.salt).map_err(|e| bad(&e.to_string()))?;
    let nonce = B64.decode(e.cipher.nonce).map_err(|e| bad(&e.to_string()))?;
    let sealed = B64.decode(e.ciphertext).map_err(|e| bad(&e.to_string()))?;
    if nonce.len() != 24 {
        return Err(bad("the nonce is not 24 bytes"));
    }
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut key).map_err(|e| bad(&e.to_string()))?;
    let cipher = XSalsa20Poly1305::new(&key.into());
    cipher
        .decrypt(nonce.as_slice().into(), sealed.as_slice())
        .map_err(|_| SignError::WrongPassword)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key file sealed here the way cosign seals one (the interop test
    /// reads files the `sigstore` crate writes).
    fn seal(pkcs8: &[u8], password: &[u8], log_n: u8) -> String {
        let salt = [7u8; 32];
        let nonce = [9u8; 24];
        let mut key = [0u8; 32];
        scrypt::scrypt(password, &salt, &scrypt::Params::new(log_n, 8, 1).unwrap(), &mut key).unwrap();
        let sealed = XSalsa20Poly1305::new(&key.into())
            .encrypt(nonce.as_slice().into(), pkcs8)
            .unwrap();
        let body = serde_json::json!({
            "kdf": {"name": "scrypt", "params": {"N": 1u64 << log_n, "r": 8, "p": 1}, "salt": B64.encode(salt)},
            "cipher": {"name": "nacl/secretbox", "nonce": B64.encode(nonce)},
            "ciphertext": B64.encode(sealed),
        });
        let b64 = B64.encode(serde_json::to_vec(&body).unwrap());
        format!("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{b64}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    }

    #[test]
    fn key_files_open_with_their_password_only() {
        let (key, pkcs8) = SigningKey::generate().unwrap();
        let file = seal(&pkcs8, b"hunter2", 10);
        let (opened, der) = read_private_key(&file, b"hunter2").unwrap();
        assert_eq!((opened.public, der), (key.public.clone(), pkcs8.clone()));
        assert_eq!(read_private_key(&file, b"wrong").err(), Some(SignError::WrongPassword));
        // scrypt asking for 2^24 · 8 · 128 bytes (16 GiB) is refused before deriving.
        let (_, der) = pem_block(&seal(&pkcs8, b"x", 10)).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&der).unwrap();
        v["kdf"]["params"]["N"] = (1u64 << 24).into();
        let hostile = format!(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            B64.encode(serde_json::to_vec(&v).unwrap())
        );
        assert!(matches!(read_private_key(&hostile, b"x"), Err(SignError::BadKey(m)) if m.contains("out of range")));
        assert!(read_private_key(
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            b""
        )
        .is_err());
    }
}
