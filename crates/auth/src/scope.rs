//! What a caller may do to a repository, and how that is asked for.

use std::fmt;
use std::str::FromStr;

use crate::AuthError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

/// A set of [`Action`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);
    pub const PULL: Actions = Actions(1);
    pub const PUSH: Actions = Actions(2);
    pub const DELETE: Actions = Actions(4);
    pub const ALL: Actions = Actions(7);

    pub fn of(a: Action) -> Actions {
        match a {
            Action::Pull => Self::PULL,
            Action::Push => Self::PUSH,
            Action::Delete => Self::DELETE,
        }
    }
    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }
    pub fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses `pull,push`, `*`, or an empty string (no actions).
    pub fn parse_list(s: &str) -> Result<Actions, AuthError> {
        s.split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .try_fold(Actions::NONE, |acc, a| {
                let one = match a {
                    "pull" => Self::PULL,
                    "push" => Self::PUSH,
                    "delete" => Self::DELETE,
                    "*" => Self::ALL,
                    other => return Err(AuthError::BadAction(other.to_string())),
                };
                Ok(acc.union(one))
            })
    }

    /// The action names, as a JWT `access` entry lists them.
    pub fn names(self) -> Vec<String> {
        [(Self::PULL, "pull"), (Self::PUSH, "push"), (Self::DELETE, "delete")]
            .into_iter()
            .filter(|(a, _)| self.contains(*a))
            .map(|(_, n)| n.to_string())
            .collect()
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

/// A role granted on a namespace or repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Write,
    Admin,
}

impl Role {
    pub fn actions(self) -> Actions {
        match self {
            Role::Read => Actions::PULL,
            Role::Write => Actions::PULL.union(Actions::PUSH),
            Role::Admin => Actions::ALL,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Role, AuthError> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(AuthError::BadRole(other.to_string())),
        }
    }
}

/// One `scope` of the Docker token flow: `repository:acme/app:pull,push`
/// or `registry:catalog:*`. Repository names hold no `:`, so the type ends
/// at the first colon and the actions start after the last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl FromStr for Scope {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Scope, AuthError> {
        let bad = || AuthError::BadScope(s.to_string());
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
        if kind.is_empty() || name.is_empty() {
            return Err(bad());
        }
        Ok(Scope {
            kind: kind.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

/// What an API token is limited to: `acme/*:pull,push` (a namespace),
/// `acme/app:pull` (one repository) or `*:pull` (anything its account may reach).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenScope {
    pub pattern: String,
    pub actions: Actions,
}

impl TokenScope {
    pub fn matches(&self, repo: &str) -> bool {
        match self.pattern.strip_suffix("/*") {
            _ if self.pattern == "*" => true,
            Some(ns) => repo.strip_prefix(ns).is_some_and(|r| r.starts_with('/')),
            None => self.pattern == repo,
        }
    }

    /// The actions a token with `scopes` may take on `repo`.
    pub fn allowed(scopes: &[TokenScope], repo: &str) -> Actions {
        scopes
            .iter()
            .filter(|s| s.matches(repo))
            .fold(Actions::NONE, |acc, s| acc.union(s.actions))
    }
}

impl FromStr for TokenScope {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<TokenScope, AuthError> {
        let (pattern, actions) = s.rsplit_once(':').ok_or_else(|| AuthError::BadScope(s.to_string()))?;
        let valid = pattern == "*"
            || (!pattern.is_empty()
                && pattern
                    .trim_end_matches("/*")
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b)));
        if !valid {
            return Err(AuthError::BadScope(s.to_string()));
        }
        Ok(TokenScope {
            pattern: pattern.to_string(),
            actions: Actions::parse_list(actions)?,
        })
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.pattern, self.actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let s: Scope = "repository:acme/app:pull,push".parse().unwrap();
        assert_eq!((s.kind.as_str(), s.name.as_str()), ("repository", "acme/app"));
        assert_eq!(s.actions, ["pull", "push"]);
        let c: Scope = "registry:catalog:*".parse().unwrap();
        assert_eq!(c.actions, ["*"]);
        for bad in ["", "repository", "repository:app", ":a:pull", "repository::pull"] {
            assert!(bad.parse::<Scope>().is_err(), "{bad}");
        }
    }

    #[test]
    fn action_lists() {
        let table = [
            ("pull", Some(Actions::PULL)),
            ("pull,push", Some(Actions::PULL.union(Actions::PUSH))),
            ("*", Some(Actions::ALL)),
            ("", Some(Actions::NONE)),
            ("pull,fly", None),
        ];
        for (s, want) in table {
            assert_eq!(Actions::parse_list(s).ok(), want, "{s}");
        }
        assert_eq!(Actions::ALL.names(), ["pull", "push", "delete"]);
        assert!(Role::Write.actions().contains(Actions::PUSH));
        assert!(!Role::Write.actions().contains(Actions::DELETE));
    }

    #[test]
    fn token_scope_matching() {
        let scopes: Vec<TokenScope> = ["acme/*:pull,push", "other/app:pull"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let table = [
            ("acme/app", Actions::PULL.union(Actions::PUSH)),
            ("acme/a/b", Actions::PULL.union(Actions::PUSH)),
            ("acmex/app", Actions::NONE),
            ("acme", Actions::NONE),
            ("other/app", Actions::PULL),
            ("other/app2", Actions::NONE),
        ];
        for (repo, want) in table {
            assert_eq!(TokenScope::allowed(&scopes, repo), want, "{repo}");
        }
        assert_eq!(TokenScope::allowed(&["*:pull".parse().unwrap()], "x/y"), Actions::PULL);
        for bad in ["acme", "Acme/*:pull", "acme/*:fly", ":pull"] {
            assert!(bad.parse::<TokenScope>().is_err(), "{bad}");
        }
    }
}
