//! Rules over facts, decided without I/O: which tags are immutable, and
//! which images a promotion policy copies (and to which tag). Callers read
//! the settings and facts from storage, ask, and act on the answer inside
//! their own transaction.

mod admission;
mod freshness;
mod immutability;
mod promotion;
mod pull;
mod replication;
mod template;

pub use admission::{admission_request, parse_image, AdmissionRequest, ImageRef};
pub use freshness::age_text;
pub use immutability::{parse_patterns, TagImmutability, TagPattern};
pub use promotion::{CompiledPolicy, Evaluation, ImageFacts, PackageFact, PromotionPolicy, Rule, RuleResult};
pub use pull::{PullRule, RequireProvenance, ScanState, SignedBy, SEVERITIES};
pub use replication::{
    attachment_subject_hex, is_attachment_tag, is_repository_glob, repository_matcher, rule_selects,
};
pub use template::{upgrade_template, TagTemplate};

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("{pattern:?} is not a valid tag pattern: {why}")]
    BadPattern { pattern: String, why: String },
    #[error("stored tag patterns are not a JSON list of strings: {0}")]
    BadStoredPatterns(String),
    #[error("rule {index}: {why}")]
    BadRule { index: usize, why: String },
    #[error("tag template {template:?}: {why}")]
    BadTemplate { template: String, why: String },
    #[error("{0}")]
    BadPolicy(String),
}
