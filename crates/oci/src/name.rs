use std::fmt;
use std::str::FromStr;

use crate::{Digest, OciError};

/// A repository name such as `org/team/app`, validated against the
/// distribution spec's grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

/// Longest name accepted; the spec asks clients to keep the whole reference
/// under 255 characters, so nothing longer can be pulled by name anyway.
const MAX_NAME_LEN: usize = 255;

impl RepositoryName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl FromStr for RepositoryName {
    type Err = OciError;

    fn from_str(s: &str) -> Result<Self, OciError> {
        if s.is_empty() || s.len() > MAX_NAME_LEN || !s.split('/').all(valid_component) {
            return Err(OciError::InvalidName(s.chars().take(300).collect()));
        }
        Ok(RepositoryName(s.to_string()))
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a cosign tag (`sha256-<hex>.sig`, `.att`, `.sbom`) is about, by
/// its name alone: the image digest `sha256:<hex>` and the suffix (`sig`,
/// `att` or `sbom`). Whether the tag holds an artifact, and whether the
/// image is there, is for the caller to check.
pub fn cosign_tag_subject(tag: &str) -> Option<(String, &str)> {
    let (stem, kind) = tag.rsplit_once('.')?;
    let hex = stem.strip_prefix("sha256-")?;
    (["sig", "att", "sbom"].contains(&kind) && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| (format!("sha256:{hex}"), kind))
}

/// Checks a tag against `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), OciError> {
    let b = tag.as_bytes();
    let first_ok = b.first().is_some_and(|&x| x.is_ascii_alphanumeric() || x == b'_');
    let rest_ok = b.iter().all(|&x| x.is_ascii_alphanumeric() || b"._-".contains(&x));
    if first_ok && rest_ok && b.len() <= 128 {
        Ok(())
    } else {
        Err(OciError::InvalidTag(tag.chars().take(200).collect()))
    }
}

/// What follows `/manifests/` in a URL: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = OciError;

    fn from_str(s: &str) -> Result<Self, OciError> {
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            validate_tag(s)?;
            Ok(Reference::Tag(s.to_string()))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_table() {
        let long = format!("a/{}", "b".repeat(254));
        let cases: &[(&str, bool)] = &[
            ("library/ubuntu", true),
            ("a", true),
            ("org/team/app-build", true),
            ("a.b_c__d---e/f0", true),
            ("my_app", true),
            ("Library/ubuntu", false),
            ("", false),
            ("/a", false),
            ("a/", false),
            ("a//b", false),
            ("a..b", false),
            ("a___b", false),
            ("-a", false),
            ("a-", false),
            ("a_.b", false),
            ("a b", false),
            ("../etc", false),
            (&long, false),
        ];
        for (input, ok) in cases {
            assert_eq!(input.parse::<RepositoryName>().is_ok(), *ok, "{input:?}");
        }
    }

    #[test]
    fn tag_table() {
        let max = "a".repeat(128);
        let over = "a".repeat(129);
        let cases: &[(&str, bool)] = &[
            ("latest", true),
            ("v1.2.3-rc_1", true),
            ("_x", true),
            ("1234", true),
            (&max, true),
            (&over, false),
            ("", false),
            (".x", false),
            ("-x", false),
            ("a/b", false),
            ("a:b", false),
        ];
        for (input, ok) in cases {
            assert_eq!(validate_tag(input).is_ok(), *ok, "{input:?}");
        }
    }

    #[test]
    fn reference_distinguishes_tags_and_digests() {
        let d = Digest::sha256_of(b"x");
        assert_eq!(d.as_str().parse::<Reference>().unwrap(), Reference::Digest(d.clone()));
        assert_eq!("v1".parse::<Reference>().unwrap(), Reference::Tag("v1".into()));
        assert!("sha256:nothex".parse::<Reference>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn generated_names_are_accepted(
            parts in proptest::collection::vec("[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}", 1..5)
        ) {
            let name = parts.join("/");
            proptest::prop_assert!(name.parse::<RepositoryName>().is_ok(), "{}", name);
        }

        #[test]
        fn name_parser_never_accepts_uppercase_or_dots_at_edges(s in "\\PC{0,80}") {
            if let Ok(n) = s.parse::<RepositoryName>() {
                proptest::prop_assert!(!n.as_str().bytes().any(|b| b.is_ascii_uppercase()));
                for c in n.as_str().split('/') {
                    proptest::prop_assert!(!c.starts_with(['.', '_', '-']) && !c.ends_with(['.', '_', '-']));
                }
            }
        }

        #[test]
        fn tag_parser_matches_grammar(s in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}") {
            proptest::prop_assert!(validate_tag(&s).is_ok());
            let as_ref = s.parse::<Reference>().unwrap();
            proptest::prop_assert_eq!(as_ref, Reference::Tag(s.clone()));
        }
    }
}
