//! Tag templates of promotion policies: `%n` the source tag, `%d` the date
//! (`YYYYMMDD`, UTC), `%t` the time (`HHMMSS`, UTC), `%D` the first 12 hex
//! digits of the image digest, `%%` a percent sign; anything else is
//! literal. `%n-%d` turns build `66` promoted on 4 December 2026 into
//! `66-20261204`.

use portcullis_oci::validate_tag;

use crate::PolicyError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Tag,
    Date,
    Time,
    Digest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    text: String,
    parts: Vec<Part>,
}

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
                Some('n') => Part::Tag,
                Some('d') => Part::Date,
                Some('t') => Part::Time,
                Some('D') => Part::Digest,
                Some(other) => return Err(bad(&format!("unknown placeholder %{other} (use %n, %d, %t, %D or %%)"))),
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
        let sample = t.render("1", "sha256:0123456789abcdef", 0);
        validate_tag(&sample).map_err(|_| bad(&format!("yields {sample:?}, which is not a valid tag")))?;
        Ok(t)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The tag for source tag `tag`, image `digest`, at `unix_secs` (UTC).
    /// May still be invalid (a long source tag): the caller checks.
    pub fn render(&self, tag: &str, digest: &str, unix_secs: i64) -> String {
        let (y, m, d) = civil_from_days(unix_secs.div_euclid(86_400));
        let secs = unix_secs.rem_euclid(86_400);
        let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Tag => out.push_str(tag),
                Part::Date => out.push_str(&format!("{y:04}{m:02}{d:02}")),
                Part::Time => out.push_str(&format!("{:02}{:02}{:02}", secs / 3600, secs / 60 % 60, secs % 60)),
                Part::Digest => out.push_str(&hex[..hex.len().min(12)]),
            }
        }
        out
    }
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
        // 2026-12-04 05:14:40 UTC
        let at = 1_796_361_280;
        let digest = "sha256:a1b2c3d4e5f60718293a4b5c6d7e8f90";
        let table = [
            ("%n", "66", "66"),
            ("%n-%d", "66", "66-20261204"),
            ("release-%d.%t", "66", "release-20261204.051440"),
            ("sha-%D", "66", "sha-a1b2c3d4e5f6"),
            ("v%n", "1.2", "v1.2"),
        ];
        for (template, tag, want) in table {
            let t = TagTemplate::parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
            assert_eq!(t.render(tag, digest, at), want, "{template}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
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
        ] {
            assert!(TagTemplate::parse(t).is_err(), "{t:?}");
        }
    }
}
