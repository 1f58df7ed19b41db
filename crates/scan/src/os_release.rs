//! `/etc/os-release` and `/usr/lib/os-release` (freedesktop.org format).

/// The fields that tie distribution advisories to an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OsRelease {
    /// `debian`, `ubuntu`, `alpine`, `rhel`, …
    pub id: String,
    /// `12`, `22.04`, `3.19.1`, …
    pub version_id: Option<String>,
    pub version_codename: Option<String>,
    pub pretty_name: Option<String>,
}

/// Parses `KEY=value` lines, with optional single or double quotes and
/// backslash escapes inside double quotes. Returns `None` without an `ID`.
pub fn parse(text: &str) -> Option<OsRelease> {
    let mut out = OsRelease::default();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(raw.trim());
        match key.trim() {
            "ID" => out.id = value.to_lowercase(),
            "VERSION_ID" => out.version_id = Some(value),
            "VERSION_CODENAME" => out.version_codename = Some(value),
            "PRETTY_NAME" => out.pretty_name = Some(value),
            _ => {}
        }
    }
    (!out.id.is_empty()).then_some(out)
}

fn unquote(v: &str) -> String {
    if let Some(inner) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else if let Some(inner) = v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
        inner.to_string()
    } else {
        v.to_string()
    }
}

/// `etc/alpine-release`: one line, the release (`3.19.1`).
pub fn alpine_release(text: &str) -> Option<OsRelease> {
    let version = text.lines().next()?.trim();
    if version.is_empty() || !version.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some(OsRelease {
        id: "alpine".into(),
        version_id: Some(version.to_string()),
        version_codename: None,
        pretty_name: Some(format!("Alpine Linux v{version}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_table() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";
        let alpine = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n";
        let ubuntu =
            "# comment\nID=ubuntu\nVERSION_ID='22.04'\nVERSION_CODENAME=jammy\nPRETTY_NAME=\"Ubuntu \\\"Jammy\\\"\"\n";
        let cases: &[(&str, Option<(&str, Option<&str>, Option<&str>)>)] = &[
            (debian, Some(("debian", Some("12"), Some("bookworm")))),
            (alpine, Some(("alpine", Some("3.19.1"), None))),
            (ubuntu, Some(("ubuntu", Some("22.04"), Some("jammy")))),
            ("NAME=nothing\n", None),
            ("", None),
            ("\u{0}\u{1}garbage=\n==\n", None),
        ];
        for (text, want) in cases {
            let got = parse(text).map(|o| (o.id.clone(), o.version_id.clone(), o.version_codename.clone()));
            let want = want.map(|(a, b, c)| (a.to_string(), b.map(String::from), c.map(String::from)));
            assert_eq!(got, want, "{text:?}");
        }
        assert_eq!(parse(ubuntu).unwrap().pretty_name.as_deref(), Some("Ubuntu \"Jammy\""));
    }

    #[test]
    fn alpine_release_files() {
        let o = alpine_release("3.11.6\n").unwrap();
        assert_eq!((o.id.as_str(), o.version_id.as_deref()), ("alpine", Some("3.11.6")));
        assert!(alpine_release("").is_none());
        assert!(alpine_release("edge-garbage").is_none());
    }
}
