//! Version orderings of the ecosystems advisories are written against.

use std::cmp::Ordering;

/// Orders Debian package versions as dpkg does (Debian Policy §5.6.12):
/// `[epoch:]upstream[-revision]`, compared epoch first (numerically), then
/// upstream, then revision, each by alternating non-digit and digit runs,
/// where `~` sorts before everything, even the end of the string.
pub fn dpkg_cmp(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = dpkg_split(a);
    let (eb, ub, rb) = dpkg_split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| verrevcmp(ra.as_bytes(), rb.as_bytes()))
}

fn dpkg_split(v: &str) -> (u64, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(u64::MAX), r),
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

/// dpkg's weight of a non-digit character: letters first, then the rest,
/// with `~` below the end of the string.
fn order(c: Option<&u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => *c as i32,
        Some(b'~') => -1,
        Some(c) => *c as i32 + 256,
    }
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i)), order(b.get(j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn dpkg_order_table() {
        let cases: &[(&str, &str, Ordering)] = &[
            // Debian Policy's example: ~~ < ~~a < ~ < (empty) < a
            ("1.0~~", "1.0~~a", Less),
            ("1.0~~a", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0+b1", Less),
            ("1.2.3", "1.2.10", Less),
            ("1.0", "1.0-0", Equal),
            ("1.0-1", "1.0-2", Less),
            ("1:0.1", "2.0", Greater),
            ("0:1.0", "1.0", Equal),
            ("1.01", "1.1", Equal),
            ("2.36-9", "2.36-9+deb12u4", Less),
            ("7.88.1-10+deb12u5", "7.88.1-10+deb12u6", Less),
            ("3.0.11-1~deb12u2", "3.0.11-1", Less),
            ("1.0-1ubuntu1", "1.0-1", Greater),
            ("a", "A", Greater),
            ("1.0.0", "1.0.0.0", Less),
            ("1-2-3", "1-2-4", Less),
            ("5.2.15-2+b2", "5.2.15-2+b2", Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(dpkg_cmp(a, b), *want, "{a} vs {b}");
            assert_eq!(dpkg_cmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn garbage_versions_order_without_panicking() {
        let junk = [
            "",
            ":",
            "-",
            "::1",
            "1:",
            "~",
            "\u{0}",
            "99999999999999999999999:1",
            "é-ß",
        ];
        for a in junk {
            for b in junk {
                let _ = dpkg_cmp(a, b);
            }
        }
    }
}
