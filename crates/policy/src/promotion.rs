//! Promotion policies, as Docker Trusted Registry users know them: a source
//! repository's policy copies an image to a target repository under a
//! templated tag when every rule holds.
//!
//! Fields and operators:
//! - `tag` with a string operator on the source tag;
//! - `package_name` with a string operator on component names: holds when
//!   some component's name matches (and, with `version`, its version
//!   satisfies `<`, `<=`, `=`, `>=` or `>` in the component's own version
//!   order); with `neq` or `none_of`, when no component's does;
//! - `vulnerability_all`, `_critical`, `_high` (alias `_major`), `_medium`
//!   (alias `_minor`), `_low`, `_unknown` with a count operator;
//! - `license_name` with `one_of` (an allow list: every license identifier
//!   of every component that declares one is listed) or `none_of` (a deny
//!   list: none is);
//! - `database_age` with `lte` or `lt` and one duration (`2d`, `36h`): the
//!   vulnerability database in force is no older than that (the freshness
//!   rule: a stale database, or none, never blesses an image).
//!
//! String operators: `eq`, `neq`, `starts_with`, `ends_with`, `contains`,
//! `one_of`, `none_of`, `matches` (a glob, as for immutable tags), `regex`
//! (linear-time, 64 KiB compiled at most). Count operators: `lte`, `lt`,
//! `eq`, `gte`.

use std::cmp::Ordering;
use std::time::Duration;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::{PolicyError, TagTemplate};

/// A rule as the API takes and shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub field: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
    /// For `package_name`: a constraint such as `>= 3.0.7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A policy as the API takes and shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PromotionPolicy {
    pub target: String,
    pub tag_template: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Copy the image's signatures, SBOMs and attestations with it.
    #[serde(default = "yes")]
    pub copy_referrers: bool,
    /// A service account whose server-side key signs each promoted image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_as: Option<String>,
    /// Promote only images with verified SLSA provenance by these signers,
    /// builders and sources (as in pull rules); an index's every image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_provenance: Option<crate::RequireProvenance>,
}

fn yes() -> bool {
    true
}

/// A component as the rules see it.
#[derive(Debug, Clone)]
pub struct PackageFact {
    pub name: String,
    pub version: String,
    pub license: Option<String>,
    /// The component's ecosystem's version order.
    pub order: fn(&str, &str) -> Ordering,
}

/// What a policy is evaluated over.
#[derive(Debug, Clone, Default)]
pub struct ImageFacts {
    pub tag: String,
    pub digest: String,
    /// Findings per severity: critical, high, medium, low, unknown.
    pub counts: [u64; 5],
    pub packages: Vec<PackageFact>,
    /// Time since the vulnerability database in force was last imported
    /// or found current; `None` without a database.
    pub database_age: Option<Duration>,
}

/// One rule's outcome and the facts it looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleResult {
    pub rule: Rule,
    pub passed: bool,
    pub facts: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub passed: bool,
    pub rules: Vec<RuleResult>,
}

#[derive(Debug)]
enum StrOp {
    Eq(String),
    Neq(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    OneOf(Vec<String>),
    NoneOf(Vec<String>),
    Matches(Box<GlobMatcher>),
    Regex(Box<regex::Regex>),
}

impl StrOp {
    fn test(&self, s: &str) -> bool {
        match self {
            StrOp::Eq(v) => s == v,
            StrOp::Neq(v) => s != v,
            StrOp::StartsWith(v) => s.starts_with(v.as_str()),
            StrOp::EndsWith(v) => s.ends_with(v.as_str()),
            StrOp::Contains(v) => s.contains(v.as_str()),
            StrOp::OneOf(v) => v.iter().any(|x| x == s),
            StrOp::NoneOf(v) => !v.iter().any(|x| x == s),
            StrOp::Matches(g) => g.is_match(s),
            StrOp::Regex(r) => r.is_match(s),
        }
    }
    /// `neq` and `none_of` say what must be absent.
    fn negative(&self) -> bool {
        matches!(self, StrOp::Neq(_) | StrOp::NoneOf(_))
    }
    /// The positive form of a negative operator.
    fn positive(&self) -> Option<StrOp> {
        match self {
            StrOp::Neq(v) => Some(StrOp::Eq(v.clone())),
            StrOp::NoneOf(v) => Some(StrOp::OneOf(v.clone())),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum CountOp {
    Lte,
    Lt,
    Eq,
    Gte,
}

#[derive(Debug)]
enum Check {
    Tag(StrOp),
    Package(StrOp, Option<(Ordering, bool, String)>),
    Count(Option<usize>, CountOp, u64),
    Licenses {
        allow: bool,
        list: Vec<String>,
    },
    DatabaseAge {
        limit: Duration,
        strict: bool,
        shown: String,
    },
}

/// A policy whose rules and template have been checked, ready to evaluate.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub policy: PromotionPolicy,
    pub template: TagTemplate,
    checks: Vec<Check>,
}

/// Bounds on one policy: evaluation runs after every push to its source,
/// so its size bounds the work a push sets off.
const MAX_RULES: usize = 64;
const MAX_VALUES: usize = 256;
const MAX_VALUE_BYTES: usize = 1024;
const MAX_REGEX_BYTES: usize = 64 << 10;

fn str_op(index: usize, r: &Rule) -> Result<StrOp, PolicyError> {
    let bad = |why: String| PolicyError::BadRule { index, why };
    let one = || -> Result<String, PolicyError> {
        match r.values.as_slice() {
            [v] => Ok(v.clone()),
            _ => Err(bad(format!("operator {} takes exactly one value", r.operator))),
        }
    };
    Ok(match r.operator.as_str() {
        "eq" => StrOp::Eq(one()?),
        "neq" => StrOp::Neq(one()?),
        "starts_with" => StrOp::StartsWith(one()?),
        "ends_with" => StrOp::EndsWith(one()?),
        "contains" => StrOp::Contains(one()?),
        "one_of" | "none_of" if r.values.is_empty() => {
            return Err(bad(format!("operator {} needs at least one value", r.operator)))
        }
        "one_of" => StrOp::OneOf(r.values.clone()),
        "none_of" => StrOp::NoneOf(r.values.clone()),
        "matches" => StrOp::Matches(Box::new(
            Glob::new(&one()?)
                .map_err(|e| bad(format!("bad glob: {}", e.kind())))?
                .compile_matcher(),
        )),
        "regex" => StrOp::Regex(Box::new(
            regex::RegexBuilder::new(&one()?)
                .size_limit(MAX_REGEX_BYTES)
                .dfa_size_limit(MAX_REGEX_BYTES)
                .build()
                .map_err(|e| bad(format!("bad regex: {e}")))?,
        )),
        other => {
            return Err(bad(format!(
                "unknown operator {other:?} for field {} (eq, neq, starts_with, ends_with, contains, one_of, none_of, matches, regex)",
                r.field
            )))
        }
    })
}

fn version_constraint(index: usize, c: &str) -> Result<(Ordering, bool, String), PolicyError> {
    let c = c.trim();
    let (op, rest) = [">=", "<=", ">", "<", "="]
        .iter()
        .find_map(|op| c.strip_prefix(op).map(|rest| (*op, rest.trim())))
        .ok_or_else(|| PolicyError::BadRule {
            index,
            why: format!("version constraint {c:?}: start with <, <=, =, >= or >"),
        })?;
    if rest.is_empty() {
        return Err(PolicyError::BadRule {
            index,
            why: format!("version constraint {c:?} names no version"),
        });
    }
    // (the ordering wanted, whether equal also satisfies)
    let (ord, or_equal) = match op {
        ">=" => (Ordering::Greater, true),
        "<=" => (Ordering::Less, true),
        ">" => (Ordering::Greater, false),
        "<" => (Ordering::Less, false),
        _ => (Ordering::Equal, true),
    };
    Ok((ord, or_equal, rest.to_string()))
}

const SEVERITY_FIELDS: [(&str, Option<usize>); 9] = [
    ("vulnerability_all", None),
    ("vulnerability_critical", Some(0)),
    ("vulnerability_high", Some(1)),
    ("vulnerability_major", Some(1)),
    ("vulnerability_medium", Some(2)),
    ("vulnerability_minor", Some(2)),
    ("vulnerability_low", Some(3)),
    ("vulnerability_unknown", Some(4)),
    ("", None),
];

fn compile_rule(index: usize, r: &Rule) -> Result<Check, PolicyError> {
    let bad = |why: String| PolicyError::BadRule { index, why };
    if r.version.is_some() && r.field != "package_name" {
        return Err(bad("only package_name rules take a version".into()));
    }
    if let Some((_, severity)) = SEVERITY_FIELDS.iter().find(|(f, _)| !f.is_empty() && *f == r.field) {
        let op = match r.operator.as_str() {
            "lte" => CountOp::Lte,
            "lt" => CountOp::Lt,
            "eq" => CountOp::Eq,
            "gte" => CountOp::Gte,
            other => {
                return Err(bad(format!(
                    "unknown operator {other:?} for field {} (lte, lt, eq, gte)",
                    r.field
                )))
            }
        };
        let n = match r.values.as_slice() {
            [v] => v
                .trim()
                .parse::<u64>()
                .map_err(|_| bad(format!("{v:?} is not a count")))?,
            _ => return Err(bad(format!("{} takes exactly one count", r.field))),
        };
        return Ok(Check::Count(*severity, op, n));
    }
    match r.field.as_str() {
        "tag" => Ok(Check::Tag(str_op(index, r)?)),
        "database_age" => {
            let strict = match r.operator.as_str() {
                "lte" => false,
                "lt" => true,
                other => return Err(bad(format!("unknown operator {other:?} for field database_age (lte, lt)"))),
            };
            let (limit, shown) = match r.values.as_slice() {
                [v] => (crate::freshness::parse_limit(v).map_err(bad)?, v.trim().to_string()),
                _ => return Err(bad("database_age takes exactly one duration, such as 2d".into())),
            };
            Ok(Check::DatabaseAge { limit, strict, shown })
        }
        "package_name" => {
            let op = str_op(index, r)?;
            let version = r.version.as_deref().map(|c| version_constraint(index, c)).transpose()?;
            if version.is_some() && op.negative() {
                return Err(bad("a version constraint needs a positive operator (not neq or none_of)".into()));
            }
            Ok(Check::Package(op, version))
        }
        "license_name" => match r.operator.as_str() {
            "one_of" | "none_of" if !r.values.is_empty() => Ok(Check::Licenses {
                allow: r.operator == "one_of",
                list: r.values.clone(),
            }),
            other => Err(bad(format!(
                "license_name takes one_of (an allow list) or none_of (a deny list) with values, not {other:?}"
            ))),
        },
        other => Err(bad(format!(
            "unknown field {other:?} (tag, package_name, license_name, vulnerability_all, vulnerability_critical, vulnerability_high, vulnerability_medium, vulnerability_low, vulnerability_unknown, database_age)"
        ))),
    }
}

/// License identifiers of an SPDX expression (or a plain name).
fn license_ids(expr: &str) -> Vec<&str> {
    expr.split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|t| !t.is_empty() && !["AND", "OR", "WITH", "and", "or", "with"].contains(t))
        .collect()
}

impl PromotionPolicy {
    /// Checks every rule and the template; errors name the bad part.
    pub fn compile(&self) -> Result<CompiledPolicy, PolicyError> {
        if self.rules.len() > MAX_RULES {
            return Err(PolicyError::BadPolicy(format!("at most {MAX_RULES} rules")));
        }
        if let Some((index, r)) = self.rules.iter().enumerate().find(|(_, r)| r.values.len() > MAX_VALUES) {
            return Err(PolicyError::BadRule {
                index,
                why: format!("{} values; at most {MAX_VALUES}", r.values.len()),
            });
        }
        if let Some((index, _)) = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.values.iter().any(|v| v.len() > MAX_VALUE_BYTES))
        {
            return Err(PolicyError::BadRule {
                index,
                why: format!("a value longer than {MAX_VALUE_BYTES} bytes"),
            });
        }
        let template = TagTemplate::parse(&self.tag_template)?;
        if let Some(p) = &self.require_provenance {
            p.check_valid()?;
        }
        let checks = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile_rule(i, r))
            .collect::<Result<_, _>>()?;
        Ok(CompiledPolicy {
            policy: self.clone(),
            template,
            checks,
        })
    }

    /// Whether any rule needs scan results (components, licenses or counts).
    pub fn needs_scan(&self) -> bool {
        self.rules.iter().any(|r| r.field != "tag" && r.field != "database_age")
    }

    /// Whether a rule asks how old the vulnerability database is.
    pub fn needs_database_age(&self) -> bool {
        self.rules.iter().any(|r| r.field == "database_age")
    }
}

impl CompiledPolicy {
    /// Every rule's outcome over `facts`; passed when all hold.
    pub fn evaluate(&self, facts: &ImageFacts) -> Evaluation {
        let rules: Vec<RuleResult> = self
            .checks
            .iter()
            .zip(&self.policy.rules)
            .map(|(check, rule)| {
                let (passed, facts) = run(check, facts);
                RuleResult {
                    rule: rule.clone(),
                    passed,
                    facts,
                }
            })
            .collect();
        Evaluation {
            passed: rules.iter().all(|r| r.passed),
            rules,
        }
    }
}

fn run(check: &Check, f: &ImageFacts) -> (bool, String) {
    match check {
        Check::Tag(op) => (op.test(&f.tag), format!("tag {:?}", f.tag)),
        Check::Count(severity, op, n) => {
            let have = match severity {
                Some(i) => f.counts[*i],
                None => f.counts.iter().sum(),
            };
            let passed = match op {
                CountOp::Lte => have <= *n,
                CountOp::Lt => have < *n,
                CountOp::Eq => have == *n,
                CountOp::Gte => have >= *n,
            };
            (passed, format!("{have} findings"))
        }
        Check::Package(op, version) => {
            let (positive, absent) = match op.positive() {
                Some(p) => (p, true),
                None => (StrOp::Eq(String::new()), false),
            };
            let matcher = if absent { &positive } else { op };
            let hits: Vec<&PackageFact> = f
                .packages
                .iter()
                .filter(|p| matcher.test(&p.name))
                .filter(|p| {
                    version.as_ref().is_none_or(|(ord, or_equal, v)| {
                        let c = (p.order)(&p.version, v);
                        c == *ord || (*or_equal && c == Ordering::Equal)
                    })
                })
                .collect();
            let shown: Vec<String> = hits
                .iter()
                .take(10)
                .map(|p| format!("{} {}", p.name, p.version))
                .collect();
            let facts = if hits.is_empty() {
                "no matching package".to_string()
            } else {
                format!("{} matching: {}", hits.len(), shown.join(", "))
            };
            (hits.is_empty() == absent, facts)
        }
        Check::DatabaseAge { limit, strict, shown } => {
            match crate::freshness::judge(f.database_age, *limit, shown, *strict) {
                Ok(facts) => (true, facts),
                Err(facts) => (false, facts),
            }
        }
        Check::Licenses { allow, list } => {
            let mut offending: Vec<String> = Vec::new();
            for p in &f.packages {
                for id in p.license.as_deref().map(license_ids).unwrap_or_default() {
                    let listed = list.iter().any(|l| l == id);
                    if listed != *allow && !offending.iter().any(|o| o == id) {
                        offending.push(id.to_string());
                    }
                }
            }
            let facts = if offending.is_empty() {
                "no offending license".to_string()
            } else {
                format!("offending: {}", offending.join(", "))
            };
            (offending.is_empty(), facts)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn natural(a: &str, b: &str) -> Ordering {
        let parse = |s: &str| s.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
        parse(a).cmp(&parse(b))
    }

    fn facts() -> ImageFacts {
        let pkg = |name: &str, version: &str, license: Option<&str>| PackageFact {
            name: name.into(),
            version: version.into(),
            license: license.map(str::to_string),
            order: natural,
        };
        ImageFacts {
            tag: "66".into(),
            digest: "sha256:abc".into(),
            counts: [0, 2, 5, 1, 0],
            packages: vec![
                pkg("openssl", "3.0.2", Some("Apache-2.0")),
                pkg("bash", "5.1", Some("GPL-3.0-or-later")),
                pkg("zlib", "1.2.13", Some("Zlib OR MIT")),
                pkg("mystery", "1", None),
            ],
            database_age: Some(Duration::from_secs(30 * 3600)),
        }
    }

    fn rule(field: &str, operator: &str, values: &[&str], version: Option<&str>) -> Rule {
        Rule {
            field: field.into(),
            operator: operator.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
            version: version.map(str::to_string),
        }
    }

    /// Every field × operator over the same facts.
    #[test]
    fn rule_table() {
        let table: &[(Rule, bool)] = &[
            (rule("tag", "eq", &["66"], None), true),
            (rule("tag", "neq", &["66"], None), false),
            (rule("tag", "starts_with", &["6"], None), true),
            (rule("tag", "ends_with", &["7"], None), false),
            (rule("tag", "contains", &["6"], None), true),
            (rule("tag", "one_of", &["1", "66"], None), true),
            (rule("tag", "none_of", &["1", "66"], None), false),
            (rule("tag", "matches", &["[0-9]*"], None), true),
            (rule("tag", "regex", &["^[0-9]+$"], None), true),
            (rule("tag", "regex", &["^v"], None), false),
            (rule("vulnerability_critical", "lte", &["0"], None), true),
            (rule("vulnerability_high", "lte", &["0"], None), false),
            (rule("vulnerability_major", "lt", &["3"], None), true),
            (rule("vulnerability_medium", "eq", &["5"], None), true),
            (rule("vulnerability_minor", "gte", &["6"], None), false),
            (rule("vulnerability_low", "eq", &["1"], None), true),
            (rule("vulnerability_unknown", "lte", &["0"], None), true),
            (rule("vulnerability_all", "lte", &["8"], None), true),
            (rule("vulnerability_all", "lt", &["8"], None), false),
            (rule("package_name", "eq", &["openssl"], None), true),
            (rule("package_name", "eq", &["openssl"], Some(">= 3.0.7")), false),
            (rule("package_name", "eq", &["openssl"], Some("< 3.0.7")), true),
            (rule("package_name", "eq", &["openssl"], Some("= 3.0.2")), true),
            (rule("package_name", "starts_with", &["z"], Some("> 1.2.12")), true),
            (rule("package_name", "neq", &["telnet"], None), true),
            (rule("package_name", "none_of", &["telnet", "bash"], None), false),
            (rule("package_name", "matches", &["open*"], None), true),
            (rule("package_name", "regex", &["^lib"], None), false),
            (
                rule(
                    "license_name",
                    "one_of",
                    &["Apache-2.0", "GPL-3.0-or-later", "Zlib", "MIT"],
                    None,
                ),
                true,
            ),
            (rule("license_name", "one_of", &["Apache-2.0", "MIT"], None), false),
            (rule("license_name", "none_of", &["GPL-3.0-or-later"], None), false),
            (rule("license_name", "none_of", &["AGPL-3.0-only"], None), true),
            (rule("database_age", "lte", &["2d"], None), true),
            (rule("database_age", "lte", &["30h"], None), true),
            (rule("database_age", "lt", &["30h"], None), false),
            (rule("database_age", "lte", &["1d"], None), false),
        ];
        for (r, want) in table {
            let p = PromotionPolicy {
                target: "acme/app".into(),
                tag_template: "%n".into(),
                enabled: true,
                rules: vec![r.clone()],
                copy_referrers: true,
                sign_as: None,
                require_provenance: None,
            };
            let e = p.compile().unwrap_or_else(|e| panic!("{r:?}: {e}")).evaluate(&facts());
            assert_eq!(e.passed, *want, "{r:?}: {:?}", e.rules[0].facts);
        }
    }

    #[test]
    fn evaluation_names_each_rule_and_its_facts() {
        let p = PromotionPolicy {
            target: "acme/app".into(),
            tag_template: "%n".into(),
            enabled: true,
            rules: vec![
                rule("vulnerability_critical", "lte", &["0"], None),
                rule("vulnerability_high", "lte", &["0"], None),
            ],
            copy_referrers: true,
            sign_as: None,
            require_provenance: None,
        };
        let e = p.compile().unwrap().evaluate(&facts());
        assert!(!e.passed);
        assert!(e.rules[0].passed && !e.rules[1].passed);
        assert_eq!(e.rules[1].facts, "2 findings");
        assert!(p.needs_scan());
    }

    /// Malformed policies are refused with a message naming the problem.
    #[test]
    fn malformed_policies_say_why() {
        let cases: &[(Rule, &str)] = &[
            (rule("vulnerability_severe", "lte", &["0"], None), "unknown field"),
            (rule("tag", "like", &["x"], None), "unknown operator"),
            (rule("vulnerability_high", "contains", &["0"], None), "unknown operator"),
            (rule("vulnerability_high", "lte", &["many"], None), "not a count"),
            (rule("vulnerability_high", "lte", &[], None), "exactly one count"),
            (rule("tag", "eq", &["a", "b"], None), "exactly one value"),
            (rule("tag", "one_of", &[], None), "at least one value"),
            (rule("tag", "regex", &["(unclosed"], None), "bad regex"),
            (
                rule("tag", "regex", &["\\w{1000}\\w{1000}\\w{1000}"], None),
                "bad regex",
            ),
            (rule("tag", "matches", &["[a-"], None), "bad glob"),
            (rule("package_name", "eq", &["x"], Some("~1.0")), "version constraint"),
            (rule("package_name", "neq", &["x"], Some(">1")), "positive operator"),
            (rule("tag", "eq", &["x"], Some(">1")), "only package_name"),
            (rule("license_name", "eq", &["MIT"], None), "allow list"),
            (rule("tag", "one_of", &vec!["v"; 257], None), "at most 256"),
            (rule("tag", "eq", &[&"x".repeat(1025)], None), "longer than 1024"),
            (rule("database_age", "gte", &["2d"], None), "(lte, lt)"),
            (rule("database_age", "lte", &["2d", "3d"], None), "exactly one duration"),
            (rule("database_age", "lte", &["fortnight"], None), "write it like"),
            (rule("database_age", "lte", &["10s"], None), "between 1m and 366d"),
        ];
        for (r, why) in cases {
            let p = PromotionPolicy {
                target: "acme/app".into(),
                tag_template: "%n".into(),
                enabled: true,
                rules: vec![r.clone()],
                copy_referrers: true,
                sign_as: None,
                require_provenance: None,
            };
            let e = p.compile().unwrap_err().to_string();
            assert!(e.contains(why), "{r:?}: {e}");
        }
        let p: Result<PromotionPolicy, _> =
            serde_json::from_str(r#"{"target": "a/b", "tag_template": "%n", "rulez": []}"#);
        assert!(p.unwrap_err().to_string().contains("rulez"));
        let p = PromotionPolicy {
            target: "a/b".into(),
            tag_template: "%q".into(),
            enabled: true,
            rules: vec![],
            copy_referrers: true,
            sign_as: None,
            require_provenance: None,
        };
        assert!(p.compile().unwrap_err().to_string().contains("%q"));
    }

    /// The freshness rule names the age and the limit, refuses without a
    /// database, and alone needs no scan.
    #[test]
    fn stale_or_missing_databases_never_bless() {
        let p = PromotionPolicy {
            target: "acme/app".into(),
            tag_template: "%n".into(),
            enabled: true,
            rules: vec![rule("database_age", "lte", &["2d"], None)],
            copy_referrers: true,
            sign_as: None,
            require_provenance: None,
        };
        assert!(!p.needs_scan() && p.needs_database_age());
        let compiled = p.compile().unwrap();
        let table = [
            (
                Some(Duration::from_secs(3 * 86_400 + 3600)),
                false,
                "3d 1h old (limit 2d)",
            ),
            (Some(Duration::from_secs(3600)), true, "1h 0m old"),
            (None, false, "no vulnerability database"),
        ];
        for (age, pass, text) in table {
            let facts = ImageFacts {
                database_age: age,
                ..facts()
            };
            let e = compiled.evaluate(&facts);
            assert_eq!(e.passed, pass, "{age:?}");
            assert!(e.rules[0].facts.contains(text), "{}", e.rules[0].facts);
        }
    }
}
