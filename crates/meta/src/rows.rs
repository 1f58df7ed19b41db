//! Helpers every table module shares, below all of them: bind values for
//! `Meta::write`, the `LIKE` pattern of a name filter, and the five
//! severity-count columns. Nothing here imports another table module.

use sqlx::Row;

use crate::Result;

/// A bind value for [`Meta::write`].
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Text(Option<String>),
    Int(Option<i64>),
}

pub(crate) fn t(s: impl Into<String>) -> Value {
    Value::Text(Some(s.into()))
}
pub(crate) fn ot(s: Option<&str>) -> Value {
    Value::Text(s.map(str::to_string))
}

/// The namespace a repository lives in: the part before the first `/`
/// (none for a name without one).
pub(crate) fn namespace_of(repo: &str) -> &str {
    repo.split_once('/').map_or("", |(ns, _)| ns)
}

/// A LIKE pattern matching names that contain `text`, with LIKE's own
/// characters escaped; empty for no filter.
pub(crate) fn name_filter(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let mut p = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Per-severity counts, worst first: critical, high, medium, low, unknown.
pub type SeverityCounts = [i64; 5];

/// The five severity counts a query selects as consecutive columns, the
/// first at `first`.
pub(crate) fn severity_counts(r: &sqlx::any::AnyRow, first: usize) -> Result<SeverityCounts> {
    Ok([
        r.try_get(first)?,
        r.try_get(first + 1)?,
        r.try_get(first + 2)?,
        r.try_get(first + 3)?,
        r.try_get(first + 4)?,
    ])
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_escape_their_own_characters() {
        let table = [
            ("", ""),
            ("app", "%app%"),
            ("a_b", "%a\\_b%"),
            ("50%", "%50\\%%"),
            ("a\\b", "%a\\\\b%"),
        ];
        for (text, want) in table {
            assert_eq!(super::name_filter(text), want, "{text}");
        }
    }
}
