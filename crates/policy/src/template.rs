//! Tag templates of promotion policies, with Docker Trusted Registry's
//! variables (so its policies move over unchanged), all in UTC: `%n` the
//! source tag; `%A` `%a` the weekday's name (`Friday`, `Fri`), `%w` its
//! number (Sunday 0); `%d` the day of the month (`04`); `%B` `%b` the
//! month's name (`December`, `Dec`), `%m` its number (`12`); `%Y` `%y` the
//! year (`2026`, `26`); `%H` `%I` the hour (24- and 12-hour), `%p` `AM` or
//! `PM`; `%M` the minute; `%S` the second; `%f` the microseconds; `%Z` the
//! zone (`UTC`); `%j` the day of the year (`338`); `%W` the week of the
//! year (Monday first, `48`); and ours, `%D`, the first 12 hex digits of
//! the image digest. `%%` is a percent sign; anything else is literal.
//! `%n-%Y%m%d` turns build `66` promoted on 4 December 2026 into
//! `66-20261204`.

use portcullis_oci::validate_tag;

use crate::PolicyError;

/// The placeholders, each a letter after `%`.
const PLACEHOLDERS: &str = "nAawdBbmYyHIpMSfZjWD";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// A placeholder's letter.
    Var(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    text: String,
    parts: Vec<Part>,
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl TagTemplate {
    /// Parses and checks a template: it must yield a valid tag for a
    /// one-character source tag (so literals and placeholders are sound).
    pub fn parse(text: &str) -> Result<TagTemplate, PolicyError> {
        let bad = |why: &str| PolicyError::BadTemplate {
            template: text.to_string(),
            why: why.to_string(),
        };
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let part = match chars.next() {
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some(v) if PLACEHOLDERS.contains(v) => Part::Var(v),
                Some(other) => {
                    return Err(bad(&format!(
                        "unknown placeholder %{other} (one of %n %A %a %w %d %B %b %m %Y %y %H %I %p %M %S %f %Z %j %W %D, or %%)"
                    )))
                }
                None => return Err(bad("ends with a lone %")),
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if parts.is_empty() {
            return Err(bad("is empty"));
        }
        let t = TagTemplate {
            text: text.to_string(),
            parts,
        };
        // At the epoch, and on a Wednesday in September afternoon (the
        // longest names), 2026-09-30 15:00 UTC.
        for at in [0, 1_790_780_400_000_000] {
            let sample = t.render("1", "sha256:0123456789abcdef", at);
            validate_tag(&sample).map_err(|_| bad(&format!("yields {sample:?}, which is not a valid tag")))?;
        }
        Ok(t)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The tag for source tag `tag`, image `digest`, at `unix_micros`
    /// (UTC). May still be invalid (a long source tag): the caller checks.
    pub fn render(&self, tag: &str, digest: &str, unix_micros: i64) -> String {
        let secs_total = unix_micros.div_euclid(1_000_000);
        let micros = unix_micros.rem_euclid(1_000_000);
        let days = secs_total.div_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let secs = secs_total.rem_euclid(86_400);
        let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
        // 1970-01-01 was a Thursday.
        let weekday = (days + 4).rem_euclid(7) as usize;
        let yday = days - days_from_civil(y, 1, 1);
        // Weeks begin on Monday; days before the year's first Monday are week 0.
        let monday_based = (weekday + 6) % 7;
        let week = (yday + 7 - monday_based as i64) / 7;
        let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Var(v) => out.push_str(&match v {
                    'n' => tag.to_string(),
                    'A' => WEEKDAYS[weekday].to_string(),
                    'a' => WEEKDAYS[weekday][..3].to_string(),
                    'w' => weekday.to_string(),
                    'd' => format!("{d:02}"),
                    'B' => MONTHS[m as usize - 1].to_string(),
                    'b' => MONTHS[m as usize - 1][..3].to_string(),
                    'm' => format!("{m:02}"),
                    'Y' => format!("{y:04}"),
                    'y' => format!("{:02}", y.rem_euclid(100)),
                    'H' => format!("{hour:02}"),
                    'I' => format!("{:02}", (hour + 11) % 12 + 1),
                    'p' => (if hour < 12 { "AM" } else { "PM" }).to_string(),
                    'M' => format!("{minute:02}"),
                    'S' => format!("{second:02}"),
                    'f' => format!("{micros:06}"),
                    'Z' => "UTC".to_string(),
                    'j' => format!("{:03}", yday + 1),
                    'W' => format!("{week:02}"),
                    _ => hex[..hex.len().min(12)].to_string(),
                }),
            }
        }
        out
    }
}

/// A template written before DTR's variables, rewritten to mean the same:
/// the old `%d` (`YYYYMMDD`) becomes `%Y%m%d` and the old `%t` (`HHMMSS`)
/// `%H%M%S`; everything else stays.
pub fn upgrade_template(old: &str) -> String {
    let mut out = String::new();
    let mut chars = old.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str("%Y%m%d"),
            Some('t') => out.push_str("%H%M%S"),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 of (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm, the inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_table() {
        // Friday 2026-12-04 05:14:40.123456 UTC
        let at = 1_796_361_280_123_456;
        let digest = "sha256:a1b2c3d4e5f60718293a4b5c6d7e8f90";
        let table = [
            ("%n", "66", "66"),
            ("%n-%Y%m%d", "66", "66-20261204"),
            ("release-%Y%m%d.%H%M%S", "66", "release-20261204.051440"),
            ("%A-%a-%w", "x", "Friday-Fri-5"),
            ("%B-%b-%m-%d", "x", "December-Dec-12-04"),
            ("%y.%j.%W", "x", "26.338.48"),
            ("%I%p-%M-%S.%f%Z", "x", "05AM-14-40.123456UTC"),
            ("sha-%D", "66", "sha-a1b2c3d4e5f6"),
            ("v%n", "1.2", "v1.2"),
        ];
        for (template, tag, want) in table {
            let t = TagTemplate::parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
            assert_eq!(t.render(tag, digest, at), want, "{template}");
        }
        // Afternoon, a Sunday and the year's first days (week 0 before the first Monday).
        let t = TagTemplate::parse("%I%p-%a-%W-%j").unwrap();
        assert_eq!(t.render("x", digest, 1_767_538_800_000_000), "03PM-Sun-00-004"); // 2026-01-04 15:00
        assert_eq!(t.render("x", digest, 1_767_571_200_000_000), "12AM-Mon-01-005"); // 2026-01-05 00:00
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    }

    #[test]
    fn old_templates_are_upgraded_to_the_same_tags() {
        let at = 1_796_361_280_000_000;
        for (old, new, tag) in [
            ("%n-%d", "%n-%Y%m%d", "66-20261204"),
            ("release-%d.%t", "release-%Y%m%d.%H%M%S", "release-20261204.051440"),
            ("v%n", "v%n", "v66"),
            ("sha-%D", "sha-%D", "sha-a1b2c3d4e5f6"),
        ] {
            assert_eq!(upgrade_template(old), new);
            let t = TagTemplate::parse(new).unwrap();
            assert_eq!(t.render("66", "sha256:a1b2c3d4e5f60718", at), tag, "{old}");
        }
    }

    #[test]
    fn bad_templates_are_refused_when_saved() {
        for t in [
            "",
            "%",
            "%x",
            "-%n",
            "a/%n",
            "%n with space",
            "100%-%n",
            "100%%-%n",
            &"x".repeat(130),
            // Fits on a Thursday in January, not on a Wednesday in September.
            &format!("{}%A%B", "x".repeat(113)),
        ] {
            assert!(TagTemplate::parse(t).is_err(), "{t:?}");
        }
    }
}
