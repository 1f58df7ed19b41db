//! Identity primitives for Portcullis. Pure: values in, values out; the
//! caller owns storage, clocks and sockets.
//!
//! - [`password`]: argon2id hashes in PHC form.
//! - [`ApiToken`]: machine credentials, shown once, stored as a hash.
//! - [`Actions`], [`Role`], [`Scope`]: what the Docker token flow asks for
//!   and what a grant gives.
//! - [`TokenKeys`]: Ed25519-signed JWTs with a key id, so keys can rotate
//!   while issued tokens stay valid.
//! - [`LoginThrottle`]: slows password guessing per account and per address.

mod jwt;
pub mod password;
mod scope;
mod throttle;
mod token;

pub use jwt::{AccessEntry, RegistryClaims, TokenKeys};
pub use scope::{Action, Actions, Role, Scope, TokenScope};
pub use throttle::{Attempt, LoginThrottle};
pub use token::ApiToken;

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum AuthError {
    #[error("malformed scope {0:?}: expected TYPE:NAME:ACTIONS")]
    BadScope(String),
    #[error("unknown action {0:?}: expected pull, push, delete or *")]
    BadAction(String),
    #[error("unknown role {0:?}: expected read, write or admin")]
    BadRole(String),
    #[error("malformed API token")]
    BadToken,
    #[error("invalid registry token: {0}")]
    InvalidJwt(String),
    #[error("signing key: {0}")]
    Key(String),
    #[error("password hashing: {0}")]
    Hash(String),
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;
