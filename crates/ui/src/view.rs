//! Small formatting pieces the templates share: URL encoding, times,
//! sizes, scan shields and the severity bar (inline SVG, no script).

/// Percent-encodes everything but RFC 3986's unreserved characters, for a
/// value placed in a query string or a path segment. A repository name goes
/// to the API as one segment (`acme%2Fapp`), so no name is read as a route.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The elements of an API answer's array; none when it holds no array.
pub fn items(v: &serde_json::Value) -> impl DoubleEndedIterator<Item = &serde_json::Value> {
    v.as_array().into_iter().flatten()
}

/// An API answer's time (ms since 1970) as text; empty when it has none.
pub fn time_of(v: &serde_json::Value) -> String {
    v.as_i64().map(time).unwrap_or_default()
}

/// Milliseconds since 1970 as `YYYY-MM-DD HH:MM UTC`.
pub fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// `YYYY-MM-DD` (UTC midnight) as milliseconds since 1970.
pub fn day_ms(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-');
    let (y, m, d): (i64, i64, i64) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || date.len() != 10 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400_000)
}

pub fn size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The first 12 hex digits of a digest, as registries show them.
pub fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

pub const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "unknown"];

/// Each severity's colour in charts, in [`SEVERITIES`] order (the shields'
/// colours in `app.css`).
const SEVERITY_FILLS: [&str; 5] = ["#8b0000", "#d9480f", "#e6a700", "#4c6ef5", "#868e96"];

/// What a scan says of an image, as a badge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shield {
    /// CSS class: `clean`, `critical`, `high`, `medium`, `low`, `pending`, `failed`, `none`.
    pub class: &'static str,
    pub text: String,
}

/// The shield for a scan object as the API gives it (`null` when never
/// scanned): counts per severity, or the state it is in.
pub fn shield(scan: &serde_json::Value) -> Shield {
    let status = scan["status"].as_str();
    let (class, text) = match status {
        None => ("none", "not scanned".to_string()),
        Some("queued") | Some("scanning") => ("pending", "scanning".to_string()),
        Some("failed") => ("failed", "scan failed".to_string()),
        Some(_) if scan["matched"] == serde_json::Value::Bool(false) => {
            ("pending", "no vulnerability database".to_string())
        }
        Some(_) => return counts_shield(&scan["counts"]),
    };
    Shield {
        class,
        text: text.to_string(),
    }
}

/// A shield from `{"critical": n, …}`: green when every count is zero.
pub fn counts_shield(counts: &serde_json::Value) -> Shield {
    let n = |s: &str| counts[s].as_i64().unwrap_or(0);
    let parts: Vec<String> = SEVERITIES
        .iter()
        .filter(|s| n(s) > 0)
        .map(|s| format!("{} {}", n(s), s))
        .collect();
    match SEVERITIES.iter().find(|s| n(s) > 0) {
        None => Shield {
            class: "clean",
            text: "✓ clean".into(),
        },
        Some(worst) => Shield {
            class: match *worst {
                "critical" => "critical",
                "high" => "high",
                "medium" => "medium",
                _ => "low",
            },
            text: parts.join(", "),
        },
    }
}

/// One bar of a severity chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: &'static str,
    pub count: i64,
    pub x: u32,
    pub width: u32,
    pub fill: &'static str,
}

/// A stacked bar of findings per severity, `total_width` wide; drawn as
/// SVG rectangles by the template.
pub fn severity_bars(counts: &serde_json::Value, total_width: u32) -> Vec<Bar> {
    let values: Vec<i64> = SEVERITIES
        .iter()
        .map(|s| counts[s].as_i64().unwrap_or(0).max(0))
        .collect();
    let total: i64 = values.iter().sum();
    if total == 0 {
        return Vec::new();
    }
    let mut x = 0;
    let mut bars = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if *v == 0 {
            continue;
        }
        let width = ((*v as f64 / total as f64) * total_width as f64).round().max(2.0) as u32;
        bars.push(Bar {
            label: SEVERITIES[i],
            count: *v,
            x,
            width,
            fill: SEVERITY_FILLS[i],
        });
        x += width;
    }
    bars
}

/// One rectangle of a chart, with its tooltip.
#[derive(Debug, Clone, PartialEq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub fill: &'static str,
    pub title: String,
}

/// Findings over time: one column per day from `since` (ms) for `days`
/// days, stacked by severity (critical at the bottom), as tall as the
/// worst day at `height`. `history` is the API's `days` list.
pub fn findings_chart(history: &serde_json::Value, since: i64, days: i64, column: u32, height: u32) -> Vec<Rect> {
    let index_of = |e: &serde_json::Value| (e["day"].as_i64().unwrap_or(0) - since).div_euclid(86_400_000);
    let entries: Vec<&serde_json::Value> = items(history).filter(|e| (0..days).contains(&index_of(e))).collect();
    let total = |e: &serde_json::Value| -> i64 {
        SEVERITIES[..4]
            .iter()
            .map(|s| e["counts"][s].as_i64().unwrap_or(0))
            .sum()
    };
    let top = entries.iter().map(|e| total(e)).max().unwrap_or(0).max(1);
    let mut rects = Vec::new();
    for e in &entries {
        let day = e["day"].as_i64().unwrap_or(0);
        let index = index_of(e);
        let mut y = height;
        for (i, s) in SEVERITIES[..4].iter().enumerate() {
            let n = e["counts"][s].as_i64().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let h = ((n as f64 / top as f64) * height as f64).round().max(1.0) as u32;
            y = y.saturating_sub(h);
            rects.push(Rect {
                x: index as u32 * column,
                y,
                width: column.saturating_sub(1).max(1),
                height: h,
                fill: SEVERITY_FILLS[i],
                title: format!(
                    "{}: {n} {s} in {} images",
                    &time(day)[..10],
                    e["images"].as_i64().unwrap_or(0)
                ),
            });
        }
    }
    rects
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_table() {
        let table = [
            (0, "1970-01-01 00:00 UTC"),
            (951_782_400_000, "2000-02-29 00:00 UTC"),
            (1_796_380_245_000, "2026-12-04 10:30 UTC"),
        ];
        for (ms, want) in table {
            assert_eq!(time(ms), want, "{ms}");
        }
    }

    #[test]
    fn days_table() {
        let table = [
            ("1970-01-01", Some(0)),
            ("2000-02-29", Some(951_782_400_000)),
            ("2026-12-04", Some(1_796_342_400_000)),
            ("2026-13-01", None),
            ("2026-1-1", None),
            ("yesterday", None),
        ];
        for (date, want) in table {
            assert_eq!(day_ms(date), want, "{date}");
            if let Some(ms) = want {
                assert!(time(ms).starts_with(date), "round trip {date}");
            }
        }
    }

    #[test]
    fn sizes_and_encodings() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
        assert_eq!(enc("a/b c&d=é"), "a%2Fb%20c%26d%3D%C3%A9");
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
    }

    #[test]
    fn shields_table() {
        let table = [
            (json!(null), "none", "not scanned"),
            (json!({"status": "queued"}), "pending", "scanning"),
            (json!({"status": "failed"}), "failed", "scan failed"),
            (
                json!({"status": "done", "matched": false, "counts": {}}),
                "pending",
                "no vulnerability database",
            ),
            (
                json!({"status": "done", "matched": true, "counts": {"critical": 0, "high": 0}}),
                "clean",
                "✓ clean",
            ),
            (
                json!({"status": "done", "matched": true, "counts": {"critical": 0, "high": 2, "low": 1}}),
                "high",
                "2 high, 1 low",
            ),
        ];
        for (scan, class, text) in table {
            let s = shield(&scan);
            assert_eq!((s.class, s.text.as_str()), (class, text), "{scan}");
        }
    }

    #[test]
    fn findings_stack_per_day_scaled_to_the_worst_day() {
        let day: i64 = 86_400_000;
        let history = json!([
            {"day": 2 * day, "images": 3, "counts": {"critical": 1, "high": 1, "medium": 0, "low": 0}},
            {"day": 4 * day, "images": 1, "counts": {"critical": 0, "high": 4, "medium": 0, "low": 0}},
            {"day": 40 * day, "images": 1, "counts": {"critical": 9}},
        ]);
        let rects = findings_chart(&history, 0, 30, 10, 40);
        let at = |x: u32| {
            rects
                .iter()
                .filter(|r| r.x == x)
                .map(|r| (r.y, r.height, r.fill))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            at(20),
            vec![(30, 10, "#8b0000"), (20, 10, "#d9480f")],
            "critical below high"
        );
        assert_eq!(at(40), vec![(0, 40, "#d9480f")], "the worst day is full height");
        assert_eq!(rects.len(), 3, "a day outside the window is left out");
        assert!(
            rects[0].title.starts_with("1970-01-03: 1 critical in 3 images"),
            "{}",
            rects[0].title
        );
    }

    #[test]
    fn bars_share_the_width_by_count() {
        let bars = severity_bars(&json!({"critical": 1, "high": 3}), 400);
        assert_eq!(bars.len(), 2);
        assert_eq!((bars[0].x, bars[0].width), (0, 100));
        assert_eq!((bars[1].x, bars[1].width), (100, 300));
        assert!(severity_bars(&json!({}), 400).is_empty());
    }
}
