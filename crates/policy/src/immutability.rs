//! Immutable tags. A repository may make all of its tags immutable
//! (`immutable_tags`), and a repository or a whole namespace may list tag
//! patterns whose tags are (`immutable_tag_patterns`). An immutable tag,
//! once it exists, names one manifest forever: it can't be moved or
//! deleted, and that manifest can't be deleted.
//!
//! Pattern syntax (globs over the whole tag, case-sensitive): `*` any run
//! of characters, `?` one character, `[abc]` / `[a-z]` / `[!a-z]` one
//! character of (or not of) a set, `{a,b}` either alternative. Tags have no
//! `/`, so `*` and `**` mean the same. Examples: `v*`, `release-*`,
//! `[0-9]*` (build numbers), `{prod,stable}`.

use globset::{Glob, GlobMatcher};

use crate::PolicyError;

/// One pattern, kept with its text and where it was set.
#[derive(Debug, Clone)]
pub struct TagPattern {
    pub pattern: String,
    /// `repository acme/app` or `namespace acme`, for messages.
    pub scope: String,
    matcher: GlobMatcher,
}

impl TagPattern {
    pub fn new(pattern: &str, scope: &str) -> Result<TagPattern, PolicyError> {
        let bad = |why: String| PolicyError::BadPattern {
            pattern: pattern.to_string(),
            why,
        };
        if pattern.is_empty() || pattern.len() > 128 {
            return Err(bad("patterns are 1 to 128 characters".into()));
        }
        if pattern.contains('/') {
            return Err(bad("tags have no '/'".into()));
        }
        let glob = Glob::new(pattern).map_err(|e| bad(e.kind().to_string()))?;
        Ok(TagPattern {
            pattern: pattern.to_string(),
            scope: scope.to_string(),
            matcher: glob.compile_matcher(),
        })
    }
}

impl TagPattern {
    /// Whether the whole of `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }
}

/// Parses a list of patterns as a client sent it or as stored (JSON).
pub fn parse_patterns(list: &[String], scope: &str) -> Result<Vec<TagPattern>, PolicyError> {
    if list.len() > 100 {
        return Err(PolicyError::BadPattern {
            pattern: format!("({} patterns)", list.len()),
            why: "at most 100 patterns".into(),
        });
    }
    list.iter().map(|p| TagPattern::new(p, scope)).collect()
}

/// Which tags of one repository are immutable.
#[derive(Debug, Clone, Default)]
pub struct TagImmutability {
    /// `Some(repository)` when every tag is.
    all: Option<String>,
    patterns: Vec<TagPattern>,
}

impl TagImmutability {
    /// From the stored settings: the repository's switch and its patterns,
    /// and its namespace's patterns (each a JSON list, empty when unset).
    pub fn from_settings(
        repository: &str,
        all: bool,
        repository_patterns: &str,
        namespace: &str,
        namespace_patterns: &str,
    ) -> Result<TagImmutability, PolicyError> {
        let mut patterns = parse_stored(repository_patterns, &format!("repository {repository}"))?;
        patterns.extend(parse_stored(namespace_patterns, &format!("namespace {namespace}"))?);
        Ok(TagImmutability {
            all: all.then(|| repository.to_string()),
            patterns,
        })
    }

    /// Why `tag` is immutable (the rule, for the refusal), or `None`.
    pub fn rule_for(&self, tag: &str) -> Option<String> {
        if let Some(repo) = &self.all {
            return Some(format!("repository {repo} has immutable tags"));
        }
        self.patterns
            .iter()
            .find(|p| p.matcher.is_match(tag))
            .map(|p| format!("tags matching {:?} are immutable in {}", p.pattern, p.scope))
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.patterns.is_empty()
    }
}

fn parse_stored(json: &str, scope: &str) -> Result<Vec<TagPattern>, PolicyError> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = serde_json::from_str(json).map_err(|e| PolicyError::BadStoredPatterns(e.to_string()))?;
    parse_patterns(&list, scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_table() {
        // (pattern, tag, immutable)
        let table = [
            ("v*", "v1.2.3", true),
            ("v*", "latest", false),
            ("v*", "V1", false),
            ("release-*", "release-2026-12", true),
            ("release-*", "release", false),
            ("[0-9]*", "66", true),
            ("[0-9]*", "dev-66", false),
            ("v?", "v1", true),
            ("v?", "v10", false),
            ("{prod,stable}", "stable", true),
            ("{prod,stable}", "staging", false),
            ("[!a-z]*", "1.0", true),
            ("[!a-z]*", "latest", false),
            ("*", "anything", true),
            ("latest", "latest", true),
            ("latest", "latest2", false),
        ];
        for (pattern, tag, want) in table {
            let rules = TagImmutability {
                all: None,
                patterns: vec![TagPattern::new(pattern, "repository r").unwrap()],
            };
            assert_eq!(rules.rule_for(tag).is_some(), want, "{pattern} {tag}");
        }
    }

    #[test]
    fn bad_patterns_say_why() {
        for p in ["", "a/b", "[a-", "{a,b", &"x".repeat(129)] {
            let e = TagPattern::new(p, "namespace n").unwrap_err();
            assert!(matches!(e, PolicyError::BadPattern { .. }), "{p}: {e}");
        }
        let many: Vec<String> = (0..101).map(|i| format!("p{i}")).collect();
        assert!(parse_patterns(&many, "x").is_err());
    }

    #[test]
    fn settings_combine_repository_and_namespace() {
        let r = TagImmutability::from_settings("acme/app", false, r#"["v*"]"#, "acme", r#"["release-*"]"#).unwrap();
        assert_eq!(
            r.rule_for("v1").unwrap(),
            "tags matching \"v*\" are immutable in repository acme/app"
        );
        assert_eq!(
            r.rule_for("release-1").unwrap(),
            "tags matching \"release-*\" are immutable in namespace acme"
        );
        assert!(r.rule_for("latest").is_none());
        let all = TagImmutability::from_settings("acme/app-build", true, "", "acme", "").unwrap();
        assert_eq!(
            all.rule_for("latest").unwrap(),
            "repository acme/app-build has immutable tags"
        );
        assert!(TagImmutability::from_settings("a/b", false, "", "a", "")
            .unwrap()
            .is_empty());
        assert!(matches!(
            TagImmutability::from_settings("a/b", false, "not json", "a", ""),
            Err(PolicyError::BadStoredPatterns(_))
        ));
    }
}
