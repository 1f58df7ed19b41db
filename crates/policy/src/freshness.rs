//! How old the vulnerability database may be when a rule relies on it:
//! a stale database finds nothing new, so it must not bless an image.
//! The caller passes the database's age (the time since its last
//! successful import or update); `None` means there is no database.

use std::time::Duration;

/// Limits shorter than this would refuse between two updates of any
/// schedule; longer than a year means no limit.
const MIN_AGE: Duration = Duration::from_secs(60);
const MAX_AGE: Duration = Duration::from_secs(366 * 86_400);

/// A limit such as `2d`, `36h` or `90m` (humantime), within bounds.
pub(crate) fn parse_limit(text: &str) -> Result<Duration, String> {
    let limit = humantime::parse_duration(text.trim())
        .map_err(|e| format!("database age {text:?}: {e} (write it like 2d, 36h or 90m)"))?;
    if !(MIN_AGE..=MAX_AGE).contains(&limit) {
        return Err(format!("database age {text:?}: between 1m and 366d"));
    }
    Ok(limit)
}

/// An age as people read it: `3d 4h`, `5h 12m`, `7m 3s`, `40s`.
pub fn age_text(age: Duration) -> String {
    let s = age.as_secs();
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `Ok` with the facts when `age` is within `limit` (`strict`: below it),
/// `Err` with them when not; no database never passes.
pub(crate) fn judge(age: Option<Duration>, limit: Duration, shown: &str, strict: bool) -> Result<String, String> {
    let Some(age) = age else {
        return Err(format!("there is no vulnerability database (limit {shown})"));
    };
    let facts = format!("the vulnerability database is {} old (limit {shown})", age_text(age));
    if age < limit || (!strict && age == limit) {
        Ok(facts)
    } else {
        Err(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_within_bounds() {
        let table = [
            ("2d", Ok(2 * 86_400)),
            ("36h", Ok(36 * 3600)),
            (" 90m ", Ok(5400)),
            ("1week", Ok(7 * 86_400)),
            ("30s", Err("between")),
            ("400d", Err("between")),
            ("soon", Err("write it like")),
            ("", Err("write it like")),
        ];
        for (text, want) in table {
            match (parse_limit(text), want) {
                (Ok(d), Ok(secs)) => assert_eq!(d.as_secs(), secs, "{text}"),
                (Err(e), Err(part)) => assert!(e.contains(part), "{text}: {e}"),
                (got, want) => panic!("{text}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn ages_are_judged_against_the_limit() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        let table = [
            (Some(h(47)), false, true, "1d 23h old (limit 2d)"),
            (Some(h(48)), false, true, "2d 0h old"),
            (Some(h(48)), true, false, "2d 0h old"),
            (Some(h(49)), false, false, "2d 1h old (limit 2d)"),
            (None, false, false, "no vulnerability database"),
        ];
        for (age, strict, pass, text) in table {
            let got = judge(age, h(48), "2d", strict);
            assert_eq!(got.is_ok(), pass, "{age:?}");
            let facts = got.unwrap_or_else(|e| e);
            assert!(facts.contains(text), "{facts}");
        }
        assert_eq!(age_text(Duration::from_secs(40)), "40s");
        assert_eq!(age_text(Duration::from_secs(423)), "7m 3s");
        assert_eq!(age_text(Duration::from_secs(5 * 3600 + 720)), "5h 12m");
    }
}
