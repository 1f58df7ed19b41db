//! Rules over facts, decided without I/O: which tags are immutable (here),
//! and later which images a promotion policy copies and which a pull rule
//! refuses. Callers read the settings and facts from storage, ask, and act
//! on the answer inside their own transaction.

mod immutability;

pub use immutability::{parse_patterns, TagImmutability, TagPattern};

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("{pattern:?} is not a valid tag pattern: {why}")]
    BadPattern { pattern: String, why: String },
    #[error("stored tag patterns are not a JSON list of strings: {0}")]
    BadStoredPatterns(String),
}
