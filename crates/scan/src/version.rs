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

/// Orders rpm `[epoch:]version-release` strings as rpm does: epoch
/// numerically (absent is 0), then version, then release, each with
/// `rpmvercmp`.
pub fn rpm_cmp(a: &str, b: &str) -> Ordering {
    let split = |v: &str| -> (u64, String, String) {
        let v = v.trim();
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.bytes().all(|c| c.is_ascii_digit()) && !e.is_empty() => {
                (e.parse().unwrap_or(u64::MAX), r)
            }
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((ver, rel)) => (epoch, ver.to_string(), rel.to_string()),
            None => (epoch, rest.to_string(), String::new()),
        }
    };
    let (ea, va, ra) = split(a);
    let (eb, vb, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| rpmvercmp(va.as_bytes(), vb.as_bytes()))
        .then_with(|| {
            // A missing release compares equal to any (rpm's rule for `>= 1.0`).
            if ra.is_empty() || rb.is_empty() {
                Ordering::Equal
            } else {
                rpmvercmp(ra.as_bytes(), rb.as_bytes())
            }
        })
}

/// rpm's segment comparison (rpmio/rpmvercmp.c): runs of digits compare
/// as numbers and beat runs of letters; `~` sorts before anything, even
/// the end; `^` sorts after the end but before anything else.
fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut i, mut j) = (0, 0);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            match (ca, cb) {
                (None, _) => return Ordering::Less,
                (_, None) => return Ordering::Greater,
                (Some(x), _) if x != b'^' => return Ordering::Greater,
                (_, Some(y)) if y != b'^' => return Ordering::Less,
                _ => {}
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca.is_none() || cb.is_none() {
            break;
        }
        let numeric = a[i].is_ascii_digit();
        let take = |s: &[u8], mut k: usize| {
            let start = k;
            while k < s.len()
                && (if numeric {
                    s[k].is_ascii_digit()
                } else {
                    s[k].is_ascii_alphabetic()
                })
            {
                k += 1;
            }
            (start, k)
        };
        let (sa, ea) = take(a, i);
        let (sb, eb) = take(b, j);
        if sb == eb {
            // Different kinds of segment: numbers are newer than letters.
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        let (mut x, y) = (&a[sa..ea], &b[sb..eb]);
        let mut y = y;
        if numeric {
            while x.first() == Some(&b'0') {
                x = &x[1..];
            }
            while y.first() == Some(&b'0') {
                y = &y[1..];
            }
            match x.len().cmp(&y.len()) {
                Ordering::Equal => {}
                other => return other,
            }
        }
        match x.cmp(y) {
            Ordering::Equal => {}
            other => return other,
        }
        i = ea;
        j = eb;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (false, _) => Ordering::Greater,
        _ => Ordering::Less,
    }
}

/// Orders Maven versions as Maven's `ComparableVersion` does: items
/// split at `.`, `-` and digit/letter changes (a change or `-` opens a
/// sub-list); numbers compare as numbers and beat qualifiers; qualifiers
/// rank `alpha < beta < milestone < rc = cr < snapshot < (release) = ga =
/// final < sp < anything else` (the rest alphabetically); trailing zeros
/// and release qualifiers do not count.
pub fn maven_cmp(a: &str, b: &str) -> Ordering {
    MavenItem::List(maven_parse(a)).cmp_to(Some(&MavenItem::List(maven_parse(b))))
}

#[derive(Debug, Clone)]
enum MavenItem {
    /// Decimal digits without leading zeros (arbitrarily long).
    Int(String),
    Str(String),
    List(Vec<MavenItem>),
}

const MAVEN_QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];

fn maven_qualifier_key(q: &str) -> String {
    match MAVEN_QUALIFIERS.iter().position(|k| *k == q) {
        Some(i) => i.to_string(),
        None => format!("{}-{q}", MAVEN_QUALIFIERS.len()),
    }
}

impl MavenItem {
    fn int(digits: &str) -> MavenItem {
        let trimmed = digits.trim_start_matches('0');
        MavenItem::Int(if trimmed.is_empty() { "0".into() } else { trimmed.into() })
    }

    fn string(s: &str, followed_by_digit: bool) -> MavenItem {
        let s = match (s, followed_by_digit) {
            ("a", true) => "alpha",
            ("b", true) => "beta",
            ("m", true) => "milestone",
            ("ga" | "final" | "release", _) => "",
            ("cr", _) => "rc",
            (other, _) => other,
        };
        MavenItem::Str(s.to_string())
    }

    fn is_null(&self) -> bool {
        match self {
            MavenItem::Int(v) => v == "0",
            MavenItem::Str(s) => s.is_empty(),
            MavenItem::List(l) => l.is_empty(),
        }
    }

    /// `None` stands for a missing item (the shorter version ran out).
    fn cmp_to(&self, other: Option<&MavenItem>) -> Ordering {
        use MavenItem::*;
        match (self, other) {
            (Int(v), None) => {
                if v == "0" {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Int(x), Some(Int(y))) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
            (Int(_), Some(_)) => Ordering::Greater,
            (Str(s), None) => maven_qualifier_key(s).cmp(&maven_qualifier_key("")),
            (Str(_), Some(Int(_))) => Ordering::Less,
            (Str(x), Some(Str(y))) => maven_qualifier_key(x).cmp(&maven_qualifier_key(y)),
            (Str(_), Some(List(_))) => Ordering::Less,
            (List(l), None) => l.first().map_or(Ordering::Equal, |f| f.cmp_to(None)),
            (List(_), Some(Int(_))) => Ordering::Less,
            (List(_), Some(Str(_))) => Ordering::Greater,
            (List(x), Some(List(y))) => {
                for i in 0..x.len().max(y.len()) {
                    let o = match (x.get(i), y.get(i)) {
                        (None, None) => Ordering::Equal,
                        (None, Some(r)) => r.cmp_to(None).reverse(),
                        (Some(l), r) => l.cmp_to(r),
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            }
        }
    }
}

/// Drops null items (zeros, release qualifiers, empty lists) from the end,
/// looking past sub-lists, as Maven does when it closes a list: `1.0-a`
/// is `1-a`.
fn maven_normalize(list: &mut Vec<MavenItem>) {
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if list[i].is_null() {
            list.remove(i);
        } else if !matches!(list[i], MavenItem::List(_)) {
            break;
        }
    }
}

fn maven_parse(version: &str) -> Vec<MavenItem> {
    let v = version.trim().to_ascii_lowercase();
    let bytes = v.as_bytes();
    // A stack of open lists; each `-` or digit/letter change opens one.
    let mut stack: Vec<Vec<MavenItem>> = vec![Vec::new()];
    let mut start = 0;
    let mut digit = false;
    let item = |digit: bool, s: &str, followed_by_digit: bool| {
        if digit {
            MavenItem::int(s)
        } else {
            MavenItem::string(s, followed_by_digit)
        }
    };
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'.' | b'-' => {
                let top = stack.last_mut().expect("root");
                if i == start {
                    top.push(MavenItem::Int("0".into()));
                } else {
                    top.push(item(digit, &v[start..i], false));
                }
                start = i + 1;
                if c == b'-' {
                    stack.push(Vec::new());
                }
            }
            c if c.is_ascii_digit() => {
                if !digit && i > start {
                    stack.last_mut().expect("root").push(item(false, &v[start..i], true));
                    start = i;
                    stack.push(Vec::new());
                }
                digit = true;
            }
            _ => {
                if digit && i > start {
                    stack.last_mut().expect("root").push(item(true, &v[start..i], false));
                    start = i;
                    stack.push(Vec::new());
                }
                digit = false;
            }
        }
    }
    if v.len() > start {
        stack.last_mut().expect("root").push(item(digit, &v[start..], false));
    }
    // Close the open lists innermost first, each into its parent.
    while stack.len() > 1 {
        let mut list = stack.pop().expect("len > 1");
        maven_normalize(&mut list);
        stack.last_mut().expect("parent").push(MavenItem::List(list));
    }
    let mut root = stack.pop().expect("root");
    maven_normalize(&mut root);
    root
}

/// PEP 440, as pip orders Python versions. A version PEP 440 cannot read
/// (a few ancient releases) sorts by [`natural_cmp`] rather than failing
/// the whole match.
pub fn pep440_cmp(a: &str, b: &str) -> Ordering {
    use std::str::FromStr;
    match (
        pep440_rs::Version::from_str(a.trim()),
        pep440_rs::Version::from_str(b.trim()),
    ) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => natural_cmp(a, b),
    }
}

/// SemVer 2.0 precedence (npm, crates.io, Go modules): build metadata is
/// ignored; Go's leading `v` and a missing minor or patch are tolerated.
pub fn semver_cmp(a: &str, b: &str) -> Ordering {
    match (parse_semver(a), parse_semver(b)) {
        (Some(x), Some(y)) => x.cmp_precedence(&y),
        _ => natural_cmp(a, b),
    }
}

fn parse_semver(v: &str) -> Option<semver::Version> {
    let v = v.trim();
    let v = v.strip_prefix('v').unwrap_or(v);
    if let Ok(parsed) = semver::Version::parse(v) {
        return Some(parsed);
    }
    let split = v.find(['-', '+']).unwrap_or(v.len());
    let (core, rest) = v.split_at(split);
    let padded = match core.split('.').count() {
        1 => format!("{core}.0.0{rest}"),
        2 => format!("{core}.0{rest}"),
        _ => return None,
    };
    semver::Version::parse(&padded).ok()
}

/// dpkg's comparison without epochs or revisions: digit runs as numbers,
/// the rest as text. The fallback for versions no scheme can read.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    verrevcmp(a.trim().as_bytes(), b.trim().as_bytes())
}

/// Orders Alpine package versions as apk-tools does:
/// `1.2.3[letter][_suffix[N]]...[~hash][-rN]`. Numeric components compare
/// as numbers (a longer list is newer); a trailing letter is newer than none;
/// suffixes rank `_alpha < _beta < _pre < _rc < (none) < _cvs < _svn < _git
/// < _hg < _p`; the `-rN` package revision decides last.
pub fn apk_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (ApkVersion::parse(a), ApkVersion::parse(b));
    let nums = {
        let mut o = Ordering::Equal;
        for i in 0..a.nums.len().max(b.nums.len()) {
            o = match (a.nums.get(i), b.nums.get(i)) {
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => Ordering::Greater,
                (None, Some(_)) => Ordering::Less,
                (None, None) => Ordering::Equal,
            };
            if o != Ordering::Equal {
                break;
            }
        }
        o
    };
    nums.then_with(|| a.letter.cmp(&b.letter))
        .then_with(|| {
            let none = (SUFFIX_NONE, 0);
            for i in 0..a.suffixes.len().max(b.suffixes.len()) {
                let x = a.suffixes.get(i).copied().unwrap_or(none);
                let y = b.suffixes.get(i).copied().unwrap_or(none);
                if x != y {
                    return x.cmp(&y);
                }
            }
            Ordering::Equal
        })
        .then_with(|| a.revision.cmp(&b.revision))
}

const SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];
/// Where "no suffix" ranks: after `rc`, before `cvs`.
const SUFFIX_NONE: u8 = 4;

struct ApkVersion {
    nums: Vec<u64>,
    letter: Option<u8>,
    suffixes: Vec<(u8, u64)>,
    revision: u64,
}

impl ApkVersion {
    fn parse(v: &str) -> ApkVersion {
        let v = v.trim();
        let (v, revision) = match v.rsplit_once("-r") {
            Some((head, r)) if !r.is_empty() && r.bytes().all(|c| c.is_ascii_digit()) => {
                (head, r.parse().unwrap_or(u64::MAX))
            }
            _ => (v, 0),
        };
        let v = v.split('~').next().unwrap_or("");
        let mut parts = v.split('_');
        let head = parts.next().unwrap_or("");
        let mut nums = Vec::new();
        let mut letter = None;
        for component in head.split('.') {
            let digits: String = component.chars().take_while(|c| c.is_ascii_digit()).collect();
            nums.push(digits.parse().unwrap_or(0));
            if let Some(l) = component[digits.len()..].bytes().next() {
                letter = Some(l);
            }
        }
        let suffixes = parts
            .map(|s| {
                let name: String = s.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
                let rank = SUFFIXES.iter().position(|x| *x == name).map_or(SUFFIX_NONE, |p| {
                    if p >= 4 {
                        p as u8 + 1
                    } else {
                        p as u8
                    }
                });
                (rank, s[name.len()..].parse().unwrap_or(0))
            })
            .collect();
        ApkVersion {
            nums,
            letter,
            suffixes,
            revision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn apk_order_table() {
        let cases: &[(&str, &str, Ordering)] = &[
            ("1.0", "1.0.1", Less),
            ("2.9", "2.10", Less),
            ("1.0_alpha", "1.0_beta", Less),
            ("1.0_beta", "1.0_pre", Less),
            ("1.0_pre", "1.0_rc", Less),
            ("1.0_rc1", "1.0_rc2", Less),
            ("1.0_rc2", "1.0", Less),
            ("1.0", "1.0_p1", Less),
            ("1.0_cvs", "1.0_git", Less),
            ("1.2.4_git20230717-r4", "1.2.4-r4", Greater),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0b", Less),
            ("1.0-r0", "1.0-r1", Less),
            ("3.1.4-r5", "3.1.4-r6", Less),
            ("4.7.1-r3", "4.7.1-r5", Less),
            ("2.9.3-r0", "2.9.2-r1", Greater),
            ("1.0-r1", "1.0.1-r0", Less),
            ("1.0", "1.0-r0", Equal),
            ("1.0~abc123-r1", "1.0-r1", Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(apk_cmp(a, b), *want, "{a} vs {b}");
            assert_eq!(apk_cmp(b, a), want.reverse(), "{b} vs {a}");
        }
        for junk in ["", "-r", "_", "..", "~", "1.0-rx", "a.b.c"] {
            let _ = apk_cmp(junk, "1.0");
        }
    }

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

    /// Orders from PEP 440's own examples and the SemVer 2.0 specification.
    #[test]
    fn pep440_and_semver_orders() {
        let pep440 = [
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
        ];
        for w in pep440.windows(2) {
            assert_eq!(pep440_cmp(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
            assert_eq!(pep440_cmp(w[1], w[0]), Ordering::Greater, "{} > {}", w[1], w[0]);
        }
        assert_eq!(pep440_cmp("1.0", "1.0.0"), Ordering::Equal, "trailing zeros");
        assert_eq!(pep440_cmp("0.10", "0.9"), Ordering::Greater);
        let semver = [
            "1.0.0-0",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.2",
            "1.10.0",
            "v2.0.0",
        ];
        for w in semver.windows(2) {
            assert_eq!(semver_cmp(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
        assert_eq!(
            semver_cmp("1.0.0+build.1", "1.0.0+build.2"),
            Ordering::Equal,
            "build metadata"
        );
        assert_eq!(semver_cmp("v1.16.0-0", "1.16.0-0"), Ordering::Equal, "Go's v");
    }

    /// Pairs from rpm's own test suite (tests/rpmvercmp.at) and EVR rules.
    #[test]
    fn rpm_order_table() {
        use Ordering::*;
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0", Greater),
            ("2.0.1a", "2.0.1", Greater),
            ("5.5p1", "5.5p2", Less),
            ("5.5p10", "5.5p1", Greater),
            ("10xyz", "10.1xyz", Less),
            ("xyz10", "xyz10.1", Less),
            ("xyz.4", "8", Less),
            ("1b.fc17", "1.fc17", Less),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~rc1~git123", "1.0~rc1", Less),
            ("1.0^", "1.0", Greater),
            ("1.0^git1", "1.0.1", Less),
            ("1.0^git1", "1.0~rc1", Greater),
            ("20101121", "20101121.0", Less),
            ("2_0", "2_0", Equal),
            ("a+", "a_", Equal),
            // Epochs and releases.
            ("1:3.0.1-41.el9_0", "1:3.0.1-43.el9_0", Less),
            ("3.0.1-99.el9", "1:3.0.1-1.el9", Less),
            ("1:3.0.7-6.el9_2", "1:3.0.1-47.el9_1", Greater),
            (
                "0.1.15-2.git2d0b8a3.module_el8.5.0+119+9a9ec082",
                "0.1.15-2.git2d0b8a3.module_el8.4.0+2496+12421f43",
                Greater,
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(rpm_cmp(a, b), want, "{a} vs {b}");
            assert_eq!(rpm_cmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    /// The orderings of Maven's own ComparableVersionTest.
    #[test]
    fn maven_order_table() {
        let qualifiers = [
            "1-alpha2snapshot",
            "1-alpha2",
            "1-alpha-123",
            "1-beta-2",
            "1-beta123",
            "1-m2",
            "1-m11",
            "1-rc",
            "1-cr2",
            "1-rc123",
            "1-SNAPSHOT",
            "1",
            "1-sp",
            "1-sp2",
            "1-sp123",
            "1-abc",
            "1-def",
            "1-pom-1",
            "1-1-snapshot",
            "1-1",
            "1-2",
            "1-123",
        ];
        let numbers = [
            "2.0", "2-1", "2.0.a", "2.0.0.a", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c", "2.1-1",
            "2.1.0.1", "2.2", "2.123", "11.a2", "11.a11", "11.b2", "11.b11", "11.m2", "11.m11", "11", "11.a", "11b",
            "11c", "11m",
        ];
        for list in [&qualifiers[..], &numbers[..]] {
            for (i, a) in list.iter().enumerate() {
                for b in &list[i + 1..] {
                    assert_eq!(maven_cmp(a, b), Ordering::Less, "{a} < {b}");
                    assert_eq!(maven_cmp(b, a), Ordering::Greater, "{b} > {a}");
                }
            }
        }
        for (a, b) in [
            ("1", "1.0"),
            ("1", "1.0.0"),
            ("1.0", "1.0.0"),
            ("1", "1-0"),
            ("1", "1.0-0"),
            ("1a", "1-a"),
            ("1a", "1.0-a"),
            ("1ga", "1"),
            ("1release", "1"),
            ("1final", "1"),
            ("1cr", "1rc"),
            ("1a1", "1-alpha-1"),
            ("1b2", "1-beta-2"),
            ("1m3", "1-milestone-3"),
            ("1X", "1x"),
        ] {
            assert_eq!(maven_cmp(a, b), Ordering::Equal, "{a} = {b}");
        }
    }
}
