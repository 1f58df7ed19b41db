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

/// The costliest scrypt parameters a key file may ask for: what cosign
/// writes (go-securesystemslib's `encrypted.Encrypt`, and sigstore-rs:
/// N=32768, r=8, p=1). scrypt holds 128·r·N bytes (32 MiB here) for the
/// whole derivation, and a key file is untrusted input (any user may import
/// one), so larger parameters are refused rather than derived; p stays 1
/// because each lane is another full pass over that memory.
pub const MAX_SCRYPT_N: u64 = 1 << 15;
pub const MAX_SCRYPT_R: u32 = 8;
pub const MAX_SCRYPT_P: u32 = 1;

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
    check_scrypt(n, r, p)?;
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

/// Refuses scrypt parameters that are malformed or costlier than cosign's.
fn check_scrypt(n: u64, r: u32, p: u32) -> Result<(), SignError> {
    let well_formed = n.is_power_of_two() && n >= 2 && r >= 1 && p >= 1;
    if !well_formed || n > MAX_SCRYPT_N || r > MAX_SCRYPT_R || p > MAX_SCRYPT_P {
        return Err(SignError::ScryptLimit { n, r, p });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key file sealed here the way cosign seals one (the interop test
    /// reads files the `sigstore` crate writes).
    fn seal(pkcs8: &[u8], password: &[u8], log_n: u8, r: u32) -> String {
        let salt = [7u8; 32];
        let nonce = [9u8; 24];
        let mut key = [0u8; 32];
        scrypt::scrypt(password, &salt, &scrypt::Params::new(log_n, r, 1).unwrap(), &mut key).unwrap();
        let sealed = XSalsa20Poly1305::new(&key.into())
            .encrypt(nonce.as_slice().into(), pkcs8)
            .unwrap();
        let body = serde_json::json!({
            "kdf": {"name": "scrypt", "params": {"N": 1u64 << log_n, "r": r, "p": 1}, "salt": B64.encode(salt)},
            "cipher": {"name": "nacl/secretbox", "nonce": B64.encode(nonce)},
            "ciphertext": B64.encode(sealed),
        });
        pem(&body)
    }

    fn pem(body: &serde_json::Value) -> String {
        let b64 = B64.encode(serde_json::to_vec(body).unwrap());
        format!("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{b64}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    }

    #[test]
    fn key_files_open_with_their_password_only() {
        let (key, pkcs8) = SigningKey::generate().unwrap();
        let file = seal(&pkcs8, b"hunter2", 10, 8);
        let (opened, der) = read_private_key(&file, b"hunter2").unwrap();
        assert_eq!((opened.public, der), (key.public.clone(), pkcs8.clone()));
        assert_eq!(read_private_key(&file, b"wrong").err(), Some(SignError::WrongPassword));
        assert!(read_private_key(
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            b""
        )
        .is_err());
    }

    #[test]
    fn scrypt_parameters_are_capped_at_cosigns() {
        let (key, pkcs8) = SigningKey::generate().unwrap();
        // Accepted: sealed for real with these parameters, and opened.
        for (log_n, r) in [(15, 8), (10, 8), (15, 1), (1, 1)] {
            let (opened, _) = read_private_key(&seal(&pkcs8, b"pw", log_n, r), b"pw")
                .unwrap_or_else(|e| panic!("N=2^{log_n} r={r}: {e}"));
            assert_eq!(opened.public, key.public, "N=2^{log_n} r={r}");
        }
        // Refused before any derivation: the file claims these parameters.
        let sealed = pem_block(&seal(&pkcs8, b"pw", 4, 8)).unwrap().1;
        let refused: [(u64, u32, u32); 13] = [
            (1 << 16, 8, 1),
            (1 << 18, 8, 1),
            (1 << 24, 8, 1),
            (1 << 63, 8, 1),
            (1 << 15, 9, 1),
            (1 << 15, 16, 1),
            (1 << 15, 8, 2),
            (1 << 10, 8, 16),
            (1 << 15, 8, 0),
            (1 << 15, 0, 1),
            (0, 8, 1),
            (1, 8, 1),
            (3 << 10, 8, 1),
        ];
        for (n, r, p) in refused {
            let mut v: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
            v["kdf"]["params"] = serde_json::json!({"N": n, "r": r, "p": p});
            let err = read_private_key(&pem(&v), b"pw").err().expect("refused");
            assert_eq!(err, SignError::ScryptLimit { n, r, p });
            let text = err.to_string();
            assert!(
                text.contains(&format!("N={n} r={r} p={p}")) && text.contains("32768"),
                "{text}"
            );
        }
    }
}
