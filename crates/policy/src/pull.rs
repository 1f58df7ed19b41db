//! Pull rules: which image manifests are not served, by what their scan
//! and signatures say. A rule on a repository and one on its namespace
//! each apply on their own: rules only ever add requirements, so a
//! repository's administrator can never loosen (or replace the signers of)
//! the namespace's rule. Blobs are not judged (clients need the manifest
//! first, and layers are shared); an index passes when every image it
//! reaches does.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::PolicyError;

/// Severities from worst to least, as scan counts are ordered.
pub const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "unknown"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PullRule {
    /// Refuse images with findings of this severity or worse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_severity: Option<String>,
    /// Count findings of Unknown severity as this severity (`critical`,
    /// `high`, `medium`, `low`) for `deny_severity`: a gate that must not
    /// let unrated vulnerabilities through says so here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_as: Option<String>,
    /// Refuse images without a finished scan (never scanned, or not yet).
    #[serde(default)]
    pub deny_unscanned: bool,
    /// Refuse images whose scan failed.
    #[serde(default)]
    pub deny_failed: bool,
    /// Serve only images with a valid signature by a current key of one of
    /// these teams' members (`org/team`) or of these accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_signed_by: Option<SignedBy>,
    /// Serve only images with a verified SLSA provenance attestation (v0.2
    /// or v1, either of cosign's forms) about the image, signed by a
    /// current key of these teams' members or accounts, whose builder and
    /// source match these globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_provenance: Option<RequireProvenance>,
    /// Refuse every image while the vulnerability database is older than
    /// this (`2d`, `36h`), or missing: its scan results can't be trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_database_age: Option<String>,
    /// When the rule was saved (ms), stamped by the registry: a signer
    /// created after it is a new account or team reusing a name, and does
    /// not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_at: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedBy {
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Count only signatures made for this repository: a tag-form
    /// payload's `docker-reference`, or a bundle statement's subject name,
    /// must name it (cosign's own default checks the digest only, so a
    /// signature for `acme/app` would also count in `acme/other`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub match_reference: bool,
}

impl SignedBy {
    /// Checks the signers named (`what` names the rule in errors).
    pub fn check_valid(&self, what: &str) -> Result<(), PolicyError> {
        if self.teams.is_empty() && self.accounts.is_empty() {
            return Err(PolicyError::BadPolicy(format!("{what} names no team and no account")));
        }
        if let Some(t) = self
            .teams
            .iter()
            .find(|t| t.split('/').count() != 2 || t.starts_with('/') || t.ends_with('/'))
        {
            return Err(PolicyError::BadPolicy(format!("team {t:?}: write teams as org/team")));
        }
        Ok(())
    }
}

/// A rule that demands SLSA provenance: an in-toto statement of predicate
/// type `https://slsa.dev/provenance/v0.2` or `/v1` about the image, in a
/// DSSE envelope signed by a current key of `signed_by`, whose builder id
/// matches one of `builder_ids` and whose source matches one
/// of `source_uris` (globs, `*` within a path segment, `**` across; an
/// empty list asks nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequireProvenance {
    /// Whose keys may sign the attestation: members of `teams`, and
    /// `accounts` (`match_reference`: the statement's subject must name
    /// the repository).
    pub signed_by: SignedBy,
    /// Globs the provenance's builder id must match one of
    /// (`https://github.com/slsa-framework/*`); empty: any builder.
    #[serde(default)]
    pub builder_ids: Vec<String>,
    /// Globs one of the provenance's source URIs must match
    /// (`git+https://git.example/acme/app@*`); empty: any source.
    #[serde(default)]
    pub source_uris: Vec<String>,
}

/// Globs of one list at most, and their length: the rule is judged on pulls.
const MAX_GLOBS: usize = 64;
const MAX_GLOB_BYTES: usize = 1024;

impl RequireProvenance {
    pub fn check_valid(&self) -> Result<(), PolicyError> {
        self.signed_by.check_valid("require_provenance.signed_by")?;
        for (list, name) in [(&self.builder_ids, "builder_ids"), (&self.source_uris, "source_uris")] {
            if list.len() > MAX_GLOBS {
                return Err(PolicyError::BadPolicy(format!(
                    "require_provenance.{name}: at most {MAX_GLOBS} globs"
                )));
            }
            for g in list {
                if g.len() > MAX_GLOB_BYTES || g.trim().is_empty() {
                    return Err(PolicyError::BadPolicy(format!(
                        "require_provenance.{name}: {g:?} is empty or longer than {MAX_GLOB_BYTES} bytes"
                    )));
                }
                globset::Glob::new(g).map_err(|e| {
                    PolicyError::BadPolicy(format!("require_provenance.{name}: {g:?} is not a glob: {}", e.kind()))
                })?;
            }
        }
        Ok(())
    }
}

/// What the scanner knows of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanState {
    None,
    Pending,
    Failed(String),
    /// Counts per severity, worst first.
    Done([u64; 5]),
}

impl PullRule {
    pub fn check_valid(&self) -> Result<(), PolicyError> {
        if let Some(by) = &self.require_signed_by {
            by.check_valid("require_signed_by")?;
        }
        if let Some(p) = &self.require_provenance {
            p.check_valid()?;
        }
        if let Some(age) = &self.max_database_age {
            crate::freshness::parse_limit(age).map_err(|e| PolicyError::BadPolicy(format!("max_database_age: {e}")))?;
        }
        if let Some(s) = &self.unknown_as {
            if !SEVERITIES[..4].contains(&s.as_str()) {
                return Err(PolicyError::BadPolicy(format!(
                    "unknown_as {s:?}: one of critical, high, medium, low"
                )));
            }
            if self.deny_severity.is_none() {
                return Err(PolicyError::BadPolicy(
                    "unknown_as needs deny_severity: it says how Unknown findings count there".into(),
                ));
            }
        }
        match &self.deny_severity {
            Some(s) if !SEVERITIES.contains(&s.as_str()) => Err(PolicyError::BadPolicy(format!(
                "deny_severity {s:?}: one of critical, high, medium, low, unknown"
            ))),
            _ => Ok(()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.deny_severity.is_none()
            && !self.deny_unscanned
            && !self.deny_failed
            && self.require_signed_by.is_none()
            && self.require_provenance.is_none()
            && self.max_database_age.is_none()
    }

    /// `Err` with the reason when the rule limits the database's age and
    /// `age` (since its last import or successful update) is past it, or
    /// there is no database (`None`).
    pub fn judge_database(&self, age: Option<Duration>) -> Result<(), String> {
        let Some(shown) = &self.max_database_age else {
            return Ok(());
        };
        // Checked when saved; a stored limit that no longer parses refuses.
        let limit = crate::freshness::parse_limit(shown).map_err(|e| format!("pull rule max_database_age: {e}"))?;
        crate::freshness::judge(age, limit, shown.trim(), false)
            .map(drop)
            .map_err(|facts| format!("pull rule max_database_age: {facts}"))
    }

    /// `Err` with the reason when the image must not be served.
    pub fn judge(&self, scan: &ScanState) -> Result<(), String> {
        match scan {
            ScanState::None | ScanState::Pending if self.deny_unscanned => Err(format!(
                "pull rule deny_unscanned: the image has {}",
                if *scan == ScanState::None {
                    "never been scanned"
                } else {
                    "not finished its scan"
                }
            )),
            ScanState::Failed(why) if self.deny_failed => {
                Err(format!("pull rule deny_failed: the image's scan failed ({why})"))
            }
            ScanState::Done(counts) => {
                let mut counts = *counts;
                if let Some(i) = self
                    .unknown_as
                    .as_deref()
                    .and_then(|s| SEVERITIES[..4].iter().position(|x| *x == s))
                {
                    counts[i] += std::mem::take(&mut counts[4]);
                }
                let Some(limit) = self
                    .deny_severity
                    .as_deref()
                    .and_then(|s| SEVERITIES.iter().position(|x| *x == s))
                else {
                    return Ok(());
                };
                let bad: Vec<String> = (0..=limit)
                    .filter(|i| counts[*i] > 0)
                    .map(|i| format!("{} {}", counts[i], SEVERITIES[i]))
                    .collect();
                if bad.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "pull rule deny_severity {}: the image has {}",
                        SEVERITIES[limit],
                        bad.join(", ")
                    ))
                }
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_table() {
        let rule = |sev: Option<&str>, unscanned: bool, failed: bool| PullRule {
            deny_severity: sev.map(str::to_string),
            deny_unscanned: unscanned,
            deny_failed: failed,
            ..PullRule::default()
        };
        let unknown_as = |sev: &str, as_: &str| PullRule {
            deny_severity: Some(sev.into()),
            unknown_as: Some(as_.into()),
            ..PullRule::default()
        };
        let done = |c: [u64; 5]| ScanState::Done(c);
        let table = [
            (rule(Some("high"), false, false), done([0, 1, 0, 0, 0]), Some("1 high")),
            (
                rule(Some("high"), false, false),
                done([2, 1, 0, 0, 0]),
                Some("2 critical, 1 high"),
            ),
            (rule(Some("high"), false, false), done([0, 0, 7, 3, 1]), None),
            (rule(Some("critical"), false, false), done([0, 9, 0, 0, 0]), None),
            (
                rule(Some("unknown"), false, false),
                done([0, 0, 0, 0, 1]),
                Some("1 unknown"),
            ),
            (rule(Some("high"), false, false), ScanState::None, None),
            (rule(None, true, false), ScanState::None, Some("never been scanned")),
            (rule(None, true, false), ScanState::Pending, Some("not finished")),
            (rule(None, true, false), ScanState::Failed("x".into()), None),
            (
                rule(None, false, true),
                ScanState::Failed("not a tar".into()),
                Some("failed (not a tar)"),
            ),
            (rule(None, false, false), ScanState::None, None),
            // Unknown counted as a chosen severity.
            (unknown_as("high", "high"), done([0, 0, 0, 0, 2]), Some("2 high")),
            (
                unknown_as("high", "critical"),
                done([0, 1, 0, 0, 1]),
                Some("1 critical, 1 high"),
            ),
            (unknown_as("high", "medium"), done([0, 0, 0, 0, 3]), None),
            (rule(Some("high"), false, false), done([0, 0, 0, 0, 3]), None),
        ];
        for (r, scan, want) in table {
            match (r.judge(&scan), want) {
                (Ok(()), None) => {}
                (Err(why), Some(part)) => assert!(why.contains(part), "{r:?} {scan:?}: {why}"),
                (got, want) => panic!("{r:?} {scan:?}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn rules_are_checked() {
        let bad = PullRule {
            require_signed_by: Some(SignedBy {
                teams: vec!["gitlab".into()],
                accounts: vec![],
                match_reference: false,
            }),
            ..PullRule::default()
        };
        assert!(bad.check_valid().is_err());
        assert!(PullRule::default().is_empty());
        for (rule, why) in [
            (
                PullRule {
                    deny_severity: Some("high".into()),
                    unknown_as: Some("unknown".into()),
                    ..PullRule::default()
                },
                "one of critical, high, medium, low",
            ),
            (
                PullRule {
                    unknown_as: Some("high".into()),
                    ..PullRule::default()
                },
                "needs deny_severity",
            ),
        ] {
            assert!(rule.check_valid().unwrap_err().to_string().contains(why), "{rule:?}");
        }
        assert!(PullRule {
            deny_severity: Some("severe".into()),
            ..PullRule::default()
        }
        .check_valid()
        .is_err());
    }

    #[test]
    fn provenance_rules_are_checked() {
        let rule = |teams: &[&str], accounts: &[&str], builders: &[&str], sources: &[&str]| PullRule {
            require_provenance: Some(RequireProvenance {
                signed_by: SignedBy {
                    teams: teams.iter().map(|t| t.to_string()).collect(),
                    accounts: accounts.iter().map(|a| a.to_string()).collect(),
                    match_reference: false,
                },
                builder_ids: builders.iter().map(|b| b.to_string()).collect(),
                source_uris: sources.iter().map(|s| s.to_string()).collect(),
            }),
            ..PullRule::default()
        };
        let long = "x".repeat(1025);
        // (rule, None: valid, Some: the error says)
        let table = [
            (rule(&[], &["acme+ci"], &[], &[]), None),
            (
                rule(
                    &["ci/builders"],
                    &[],
                    &["https://ci.acme.example/*"],
                    &["git+https://*"],
                ),
                None,
            ),
            (rule(&[], &[], &["*"], &[]), Some("names no team and no account")),
            (rule(&["builders"], &[], &[], &[]), Some("write teams as org/team")),
            (
                rule(&[], &["a"], &["a[b"], &[]),
                Some("builder_ids: \"a[b\" is not a glob"),
            ),
            (rule(&[], &["a"], &[], &[" "]), Some("source_uris")),
            (rule(&[], &["a"], &[], &[&long]), Some("longer than 1024")),
        ];
        for (r, want) in table {
            match (r.check_valid(), want) {
                (Ok(()), None) => assert!(!r.is_empty()),
                (Err(e), Some(part)) => assert!(e.to_string().contains(part), "{r:?}: {e}"),
                (got, want) => panic!("{r:?}: {got:?}, want {want:?}"),
            }
        }
        let parsed: Result<PullRule, _> =
            serde_json::from_str(r#"{"require_provenance": {"signed_by": {"accounts": ["a"]}, "builder": ["*"]}}"#);
        assert!(parsed.unwrap_err().to_string().contains("builder"));
    }

    #[test]
    fn database_age_table() {
        let rule = |age: Option<&str>| PullRule {
            max_database_age: age.map(str::to_string),
            ..PullRule::default()
        };
        let h = |n: u64| Some(Duration::from_secs(n * 3600));
        let table = [
            (rule(Some("2d")), h(47), None),
            (rule(Some("2d")), h(49), Some("is 2d 1h old (limit 2d)")),
            (rule(Some("2d")), None, Some("no vulnerability database")),
            (rule(None), None, None),
            (rule(Some("soon")), h(1), Some("write it like")),
        ];
        for (r, age, want) in table {
            match (r.judge_database(age), want) {
                (Ok(()), None) => {}
                (Err(why), Some(part)) => assert!(why.contains(part), "{r:?} {age:?}: {why}"),
                (got, want) => panic!("{r:?} {age:?}: {got:?}, want {want:?}"),
            }
        }
        assert!(!rule(Some("2d")).is_empty());
        assert!(rule(Some("2d")).check_valid().is_ok());
        let e = rule(Some("5s")).check_valid().unwrap_err().to_string();
        assert!(e.contains("max_database_age") && e.contains("between"), "{e}");
        let parsed: Result<PullRule, _> = serde_json::from_str(r#"{"max_database_age": "2d", "max_db_age": "1d"}"#);
        assert!(parsed.unwrap_err().to_string().contains("max_db_age"));
    }
}
