//! What a replication rule selects: repositories by name or glob, tags by
//! glob. Shared by pull runs, push runs and the push queue (which `meta`
//! fills in the transaction of the event that causes a push).

use crate::{parse_patterns, PolicyError};

/// Whether a rule's `source` names several repositories (a glob).
pub fn is_repository_glob(source: &str) -> bool {
    source.contains(['*', '?', '[', '{'])
}

/// A rule's `source` as a matcher over repository names: `*` stays within
/// one path segment, `**` crosses them.
pub fn repository_matcher(source: &str) -> Result<globset::GlobMatcher, PolicyError> {
    globset::GlobBuilder::new(source)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| PolicyError::BadPolicy(format!("source {source:?}: {}", e.kind())))
}

/// Tags that travel with an image, not on their own: cosign's
/// `sha256-<hex>.sig/.att/.sbom` and the referrers tag schema's `sha256-<hex>`.
pub fn is_attachment_tag(tag: &str) -> bool {
    attachment_subject_hex(tag).is_some()
}

/// The image digest's hex an attachment tag (`sha256-<hex>[.sig|.att|.sbom]`) is about.
pub fn attachment_subject_hex(tag: &str) -> Option<&str> {
    let rest = tag.strip_prefix("sha256-")?;
    let hex = rest.split('.').next().unwrap_or("");
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// Whether a rule over `source` and `tags` selects `repository`'s `tag`
/// (attachment tags are selected when their repository is: they go with
/// the image they are about). A rule that does not parse selects nothing.
pub fn rule_selects(source: &str, tags: &[String], repository: &str, tag: &str) -> bool {
    let repository_matches = if is_repository_glob(source) {
        repository_matcher(source).is_ok_and(|m| m.is_match(repository))
    } else {
        source == repository
    };
    if !repository_matches {
        return false;
    }
    if is_attachment_tag(tag) {
        return true;
    }
    parse_patterns(tags, "replication rule").is_ok_and(|ps| ps.iter().any(|p| p.matches(tag)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_select_repositories_and_tags() {
        let hex = "a".repeat(64);
        let sig = format!("sha256-{hex}.sig");
        let all = vec!["*".to_string()];
        let v = vec!["v*".to_string()];
        // (source, tags, repository, tag, selected)
        let table = [
            ("acme/release", &all, "acme/release", "1.0", true),
            ("acme/release", &all, "acme/release-2", "1.0", false),
            ("acme/*", &v, "acme/app", "v1", true),
            ("acme/*", &v, "acme/app", "latest", false),
            ("acme/*", &v, "acme/a/b", "v1", false),
            ("acme/**", &v, "acme/a/b", "v1", true),
            ("acme/*", &v, "acme/app", sig.as_str(), true),
            ("acme/*", &v, "other/app", sig.as_str(), false),
        ];
        for (source, tags, repo, tag, want) in table {
            assert_eq!(
                rule_selects(source, tags, repo, tag),
                want,
                "{source} {tags:?} {repo}:{tag}"
            );
        }
        assert!(is_attachment_tag(&format!("sha256-{hex}")));
        assert!(!is_attachment_tag("sha256-latest"));
        assert!(!is_attachment_tag("v1"));
        assert_eq!(attachment_subject_hex(&sig), Some(hex.as_str()));
    }
}
