use std::fmt;
use std::str::FromStr;

use crate::OciError;

/// The hash functions the registry verifies content with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn hasher(self) -> DigestHasher {
        let algorithm = match self {
            Algorithm::Sha256 => &ring::digest::SHA256,
            Algorithm::Sha512 => &ring::digest::SHA512,
        };
        DigestHasher {
            context: ring::digest::Context::new(algorithm),
            algorithm: self,
        }
    }
}

/// A content address, `algorithm:hex`, always in canonical (lowercase) form.
///
/// Only registered algorithms are accepted, with their exact encoded length:
/// a digest the server cannot recompute is a digest it cannot verify.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    text: String,
    algorithm_len: usize,
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        match &self.text[..self.algorithm_len] {
            "sha512" => Algorithm::Sha512,
            _ => Algorithm::Sha256,
        }
    }

    /// The encoded part after the colon.
    pub fn hex(&self) -> &str {
        &self.text[self.algorithm_len + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut h = algorithm.hasher();
        h.update(bytes);
        h.finish()
    }

    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, bytes)
    }
}

impl FromStr for Digest {
    type Err = OciError;

    fn from_str(s: &str) -> Result<Self, OciError> {
        let invalid = || OciError::InvalidDigest(s.chars().take(200).collect());
        let (alg, hex) = s.split_once(':').ok_or_else(invalid)?;
        // The spec's general grammar, checked before we decide whether we know the algorithm.
        let alg_ok = !alg.is_empty()
            && alg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
        let hex_ok = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b));
        if !alg_ok || !hex_ok {
            return Err(invalid());
        }
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(OciError::UnsupportedAlgorithm(other.chars().take(64).collect())),
        };
        let lower_hex = hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex.len() != algorithm.hex_len() || !lower_hex {
            return Err(invalid());
        }
        Ok(Digest {
            text: s.to_string(),
            algorithm_len: alg.len(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Incremental hashing for content that arrives in pieces.
///
/// Backed by ring's assembly implementations: on CPUs without SHA
/// extensions they hash about twice as fast as the portable `sha2` code,
/// and every pushed byte goes through here.
#[derive(Clone)]
pub struct DigestHasher {
    context: ring::digest::Context,
    algorithm: Algorithm,
}

impl DigestHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.context.update(bytes);
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn finish(self) -> Digest {
        let alg = self.algorithm.as_str();
        let hex = hex::encode(self.context.finish());
        Digest {
            text: format!("{alg}:{hex}"),
            algorithm_len: alg.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_table() {
        let cases: &[(&str, Result<(), &str>)] = &[
            (EMPTY_SHA256, Ok(())),
            (&format!("sha512:{}", "ab".repeat(64)), Ok(())),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                Err("invalid"),
            ),
            ("sha256:abc", Err("invalid")),
            ("sha256:", Err("invalid")),
            ("sha256", Err("invalid")),
            (":abc", Err("invalid")),
            (&format!("sha256:{}", "g".repeat(64)), Err("invalid")),
            (&format!("md5:{}", "a".repeat(32)), Err("unsupported")),
            (&format!("sha256+b64u:{}", "a".repeat(43)), Err("unsupported")),
            ("sha256:../../etc/passwd", Err("invalid")),
        ];
        for (input, want) in cases {
            let got = input.parse::<Digest>();
            match (want, &got) {
                (Ok(()), Ok(d)) => assert_eq!(d.as_str(), *input),
                (Err("invalid"), Err(OciError::InvalidDigest(_))) => {}
                (Err("unsupported"), Err(OciError::UnsupportedAlgorithm(_))) => {}
                _ => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn computes_known_digests() {
        assert_eq!(Digest::sha256_of(b"").as_str(), EMPTY_SHA256);
        let d = Digest::of(Algorithm::Sha512, b"");
        assert!(d.as_str().starts_with("sha512:cf83e1357eefb8bd"));
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d.hex().len(), 128);
        let mut h = Algorithm::Sha256.hasher();
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), Digest::sha256_of(b"hello world"));
    }

    proptest::proptest! {
        #[test]
        fn computed_digests_round_trip(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            for alg in [Algorithm::Sha256, Algorithm::Sha512] {
                let d = Digest::of(alg, &bytes);
                proptest::prop_assert_eq!(d.as_str().parse::<Digest>().unwrap(), d);
            }
        }

        #[test]
        fn parser_never_panics_and_accepts_only_canonical(s in "\\PC{0,140}") {
            if let Ok(d) = s.parse::<Digest>() {
                proptest::prop_assert_eq!(d.as_str(), s.as_str());
                proptest::prop_assert!(d.hex().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            }
        }
    }
}
