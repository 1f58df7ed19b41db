//! Image references as people type them: `docker://HOST/REPO:TAG`,
//! `HOST/REPO@sha256:…`, or `HOST/REPO` for `latest`.

use std::fmt;
use std::str::FromStr;

use portcullis_oci::{Digest, RepositoryName};

use crate::ClientError;

/// An image in some registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]`.
    pub host: String,
    pub repository: String,
    /// A tag, or a digest.
    pub reference: String,
}

impl ImageRef {
    /// The digest the reference names, if it names one.
    pub fn digest(&self) -> Option<Digest> {
        self.reference.parse().ok()
    }
}

impl FromStr for ImageRef {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<ImageRef, ClientError> {
        let bad =
            |why: &str| ClientError::Usage(format!("{s}: {why}; expected [docker://]HOST/REPOSITORY[:TAG|@DIGEST]"));
        let rest = s.strip_prefix("docker://").unwrap_or(s);
        let (host, name) = rest.split_once('/').ok_or_else(|| bad("no repository"))?;
        // As Docker decides: the first part names a registry only if it
        // looks like a host; without one we would guess a registry.
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad("name the registry's host"));
        }
        let (repository, reference) = match name.split_once('@') {
            Some((r, d)) => {
                d.parse::<Digest>().map_err(|e| bad(&e.to_string()))?;
                (r, d)
            }
            None => match name.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => (r, t),
                _ => (name, "latest"),
            },
        };
        repository.parse::<RepositoryName>().map_err(|e| bad(&e.to_string()))?;
        if reference.is_empty() {
            return Err(bad("empty tag"));
        }
        Ok(ImageRef {
            host: host.to_string(),
            repository: repository.to_string(),
            reference: reference.to_string(),
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.digest().is_some() { '@' } else { ':' };
        write!(f, "{}/{}{sep}{}", self.host, self.repository, self.reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_docker_names() {
        let d = format!("sha256:{}", "a".repeat(64));
        let cases: &[(&str, Option<(&str, &str, &str)>)] = &[
            (
                "docker://127.0.0.1:5000/acme/app:42",
                Some(("127.0.0.1:5000", "acme/app", "42")),
            ),
            ("reg.example/app", Some(("reg.example", "app", "latest"))),
            ("localhost/a/b:v1", Some(("localhost", "a/b", "v1"))),
            (
                &format!("reg.example:443/a/b@{d}"),
                Some(("reg.example:443", "a/b", &d)),
            ),
            ("docker://hostonly", None),
            ("acme/app:1", None),
            ("reg.example/a/b@sha256:abc", None),
            ("reg.example/Upper:1", None),
            ("reg.example/app:", None),
        ];
        for (input, want) in cases {
            let got = input.parse::<ImageRef>().ok();
            let got = got
                .as_ref()
                .map(|r| (r.host.as_str(), r.repository.as_str(), r.reference.as_str()));
            assert_eq!(got, *want, "{input}");
        }
        let r: ImageRef = format!("docker://reg.example/a@{d}").parse().unwrap();
        assert_eq!(r.to_string(), format!("reg.example/a@{d}"));
        assert_eq!(r.digest().unwrap().as_str(), d);
    }
}
