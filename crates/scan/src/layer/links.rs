//! Package databases that are hard or symbolic links. An image can put its
//! dpkg `status` at `/opt/x` and link `var/lib/dpkg/status` to it, so a
//! reader that skips links would not see its packages. The bytes are
//! elsewhere in the layer set: the link's own layer (a hard link always,
//! a symlink usually) or a lower one. [`LinkResolver`] says which layer to
//! read for which paths, the caller reads them with
//! [`read_files`](super::read_files), and it puts what the links point to
//! into the link's layer facts, for this image only.
//!
//! Bounded: links followed per image, hops per link (a chain of symlinks,
//! or a loop) and layer reads.

use std::collections::{BTreeMap, BTreeSet};

use super::{interpret, Hidden, LayerFacts, Limits};

/// Links followed per image.
pub const MAX_LINKS: usize = 64;
/// Links followed from one package database (a loop ends here).
pub const MAX_HOPS: u32 = 8;
/// Layer reads one image may cost for its links.
pub const MAX_READS: usize = 64;

/// What a layer holds at a path that was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Bytes(Vec<u8>),
    /// Another link, to this root-relative path.
    Link(String),
    /// A file over the size limit.
    TooLarge,
}

/// `rel` taken from directory `dir`, as the kernel would resolve it in a
/// chroot: `..` stops at the root, `.` and empty parts vanish.
pub fn resolve(dir: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = if rel.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[derive(Debug)]
struct Pending {
    /// The layer whose facts list the link, and the link's path.
    owner: usize,
    path: String,
    /// The path sought, and the layer to look in next.
    target: String,
    look: usize,
    hops: u32,
}

/// Follows the links of an image's layers, reading layers on request.
#[derive(Debug, Default)]
pub struct LinkResolver {
    pending: Vec<Pending>,
    resolved: Vec<(usize, String, Vec<u8>)>,
    warnings: Vec<(usize, String)>,
    reads: usize,
}

impl LinkResolver {
    /// Starts from the links the layers' facts recorded (bottom layer first).
    pub fn new(layers: &[&LayerFacts]) -> LinkResolver {
        let mut r = LinkResolver::default();
        for (owner, facts) in layers.iter().enumerate() {
            for (path, target) in &facts.links {
                if r.pending.len() == MAX_LINKS {
                    r.warnings.push((
                        owner,
                        format!("{path}: more than {MAX_LINKS} linked package databases; not followed"),
                    ));
                    continue;
                }
                r.pending.push(Pending {
                    owner,
                    path: path.clone(),
                    target: target.clone(),
                    look: owner,
                    hops: 1,
                });
            }
        }
        r
    }

    /// The next layer to read and the paths wanted from it, or `None` when
    /// every link is resolved or given up.
    pub fn next_read(&mut self) -> Option<(usize, BTreeSet<String>)> {
        let look = self.pending.iter().map(|p| p.look).max()?;
        if self.reads == MAX_READS {
            for p in self.pending.drain(..) {
                self.warnings.push((
                    p.owner,
                    format!("{}: not followed (more than {MAX_READS} layer reads for links)", p.path),
                ));
            }
            return None;
        }
        self.reads += 1;
        let wanted = self
            .pending
            .iter()
            .filter(|p| p.look == look)
            .map(|p| p.target.clone())
            .collect();
        Some((look, wanted))
    }

    /// What layer `look` holds at the paths [`LinkResolver::next_read`]
    /// asked for; `facts` is that layer's (for its whiteouts).
    pub fn found(&mut self, look: usize, facts: &LayerFacts, found: &BTreeMap<String, Found>) {
        let hidden = Hidden::of(facts);
        let mut still = Vec::new();
        for mut p in std::mem::take(&mut self.pending) {
            if p.look != look {
                still.push(p);
                continue;
            }
            match found.get(&p.target) {
                Some(Found::Bytes(b)) => self.resolved.push((p.owner, p.path, b.clone())),
                Some(Found::TooLarge) => self.warnings.push((
                    p.owner,
                    format!("{} links to {}, which is too large to read", p.path, p.target),
                )),
                Some(Found::Link(next)) if p.hops < MAX_HOPS => {
                    // Seen from the image as the link's layer sees it.
                    p.target = next.clone();
                    p.look = p.owner;
                    p.hops += 1;
                    still.push(p);
                }
                Some(Found::Link(_)) => self.warnings.push((
                    p.owner,
                    format!("{}: more than {MAX_HOPS} links deep (a loop?); not followed", p.path),
                )),
                None if look == 0 || hidden.hides(&p.target) => self.warnings.push((
                    p.owner,
                    format!("{} links to {}, which is not in the image", p.path, p.target),
                )),
                None => {
                    p.look -= 1;
                    still.push(p);
                }
            }
        }
        self.pending = still;
    }

    /// Puts what the links point to into their layers' facts, as if the
    /// files were at the links' paths, and the warnings of those not found.
    pub fn finish(self, layers: &mut [LayerFacts], limits: &Limits) {
        for (owner, path, bytes) in self.resolved {
            if let Some(facts) = layers.get_mut(owner) {
                facts.links.remove(&path);
                interpret(path, &bytes, limits, facts);
            }
        }
        for (owner, warning) in self.warnings {
            if let Some(facts) = layers.get_mut(owner) {
                facts.warnings.push(warning);
            }
        }
    }
}

/// Follows every link of an image's layers (bottom first), reading layers
/// with `read` (layer index, paths wanted), for callers that read layers
/// synchronously; async callers drive [`LinkResolver`] themselves.
pub fn resolve_links<E>(
    layers: &mut [LayerFacts],
    limits: &Limits,
    mut read: impl FnMut(usize, &BTreeSet<String>) -> Result<BTreeMap<String, Found>, E>,
) -> Result<(), E> {
    let refs: Vec<&LayerFacts> = layers.iter().collect();
    let mut resolver = LinkResolver::new(&refs);
    while let Some((look, wanted)) = resolver.next_read() {
        let found = read(look, &wanted)?;
        resolver.found(look, &layers[look], &found);
    }
    resolver.finish(layers, limits);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{merge, read_files, read_layer};

    const STATUS: &[u8] = b"Package: hidden-pkg\nStatus: install ok installed\nVersion: 1.0\n";

    enum E<'a> {
        File(&'a str, &'a [u8]),
        Hard(&'a str, &'a str),
        Sym(&'a str, &'a str),
    }

    fn layer(entries: &[E]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            match e {
                E::File(p, data) => {
                    h.set_size(data.len() as u64);
                    h.set_entry_type(tar::EntryType::Regular);
                    b.append_data(&mut h, p, *data).unwrap();
                }
                E::Hard(p, to) | E::Sym(p, to) => {
                    h.set_size(0);
                    let kind = if matches!(e, E::Hard(..)) {
                        tar::EntryType::Link
                    } else {
                        tar::EntryType::Symlink
                    };
                    h.set_entry_type(kind);
                    b.append_link(&mut h, p, to).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    /// Reads the layers, follows their links, merges: the package names found.
    fn packages(layers: &[Vec<u8>]) -> (Vec<String>, Vec<String>, usize) {
        let limits = Limits::default();
        let mut facts: Vec<LayerFacts> = layers.iter().map(|l| read_layer(&l[..], &limits).unwrap()).collect();
        let mut reads = 0;
        resolve_links(&mut facts, &limits, |i, wanted| {
            reads += 1;
            read_files(&layers[i][..], wanted, &limits)
        })
        .unwrap();
        let digests: Vec<String> = (0..layers.len()).map(|i| format!("l{i}")).collect();
        let image = merge(digests.iter().map(String::as_str).zip(&facts));
        let names = image.components.iter().map(|c| c.package.name.clone()).collect();
        (names, image.warnings, reads)
    }

    #[test]
    fn resolve_table() {
        let table = [
            ("var/lib/dpkg", "status.real", "var/lib/dpkg/status.real"),
            ("var/lib/dpkg", "../../../opt/x", "opt/x"),
            ("var/lib/dpkg", "../../../../../../etc/x", "etc/x"),
            ("var/lib/dpkg", "/opt/./y//z", "opt/y/z"),
            ("", "a/../b", "b"),
        ];
        for (dir, rel, want) in table {
            assert_eq!(resolve(dir, rel), want, "{dir} {rel}");
        }
    }

    /// Each way of hiding a dpkg database behind a link, and what is found.
    #[test]
    fn linked_package_databases_are_found() {
        let hidden = |names: &[String]| names == ["hidden-pkg"];
        // A hard link to a file earlier in the same layer.
        let (names, _, reads) = packages(&[layer(&[
            E::File("opt/x/data", STATUS),
            E::Hard("var/lib/dpkg/status", "opt/x/data"),
        ])]);
        assert!(hidden(&names), "hard link: {names:?}");
        assert_eq!(reads, 1);
        // A relative symlink into the same layer.
        let (names, ..) = packages(&[layer(&[
            E::Sym("var/lib/dpkg/status", "../../../opt/x/data"),
            E::File("opt/x/data", STATUS),
        ])]);
        assert!(hidden(&names), "symlink: {names:?}");
        // An absolute symlink to a file two layers down, through another link.
        let (names, ..) = packages(&[
            layer(&[E::File("srv/real", STATUS)]),
            layer(&[E::Sym("opt/hop", "/srv/real")]),
            layer(&[E::Sym("var/lib/dpkg/status", "/opt/hop")]),
        ]);
        assert!(hidden(&names), "chain across layers: {names:?}");
        // A target deleted by a whiteout in between is not found.
        let (names, warnings, _) = packages(&[
            layer(&[E::File("srv/real", STATUS)]),
            layer(&[E::File("srv/.wh.real", b"")]),
            layer(&[E::Sym("var/lib/dpkg/status", "/srv/real")]),
        ]);
        assert!(names.is_empty(), "{names:?}");
        assert!(warnings.iter().any(|w| w.contains("not in the image")), "{warnings:?}");
        // A loop ends after MAX_HOPS hops, with a warning.
        let (names, warnings, reads) = packages(&[layer(&[
            E::Sym("var/lib/dpkg/status", "a"),
            E::Sym("var/lib/dpkg/a", "status"),
        ])]);
        assert!(names.is_empty());
        assert!(warnings.iter().any(|w| w.contains("links deep")), "{warnings:?}");
        assert!(reads <= MAX_HOPS as usize);
        // A regular file written after the link replaces it.
        let (names, ..) = packages(&[layer(&[
            E::Sym("var/lib/dpkg/status", "/nowhere"),
            E::File(
                "var/lib/dpkg/status",
                b"Package: plain\nStatus: install ok installed\nVersion: 2\n",
            ),
        ])]);
        assert_eq!(names, ["plain"]);
    }

    /// Hundreds of links cost at most MAX_READS layer reads.
    #[test]
    fn links_are_bounded() {
        let entries: Vec<(String, String)> = (0..300)
            .map(|i| {
                (
                    format!("usr/lib/python3/dist-packages/p{i}.dist-info/METADATA"),
                    format!("/nowhere/{i}"),
                )
            })
            .collect();
        let e: Vec<E> = entries.iter().map(|(p, t)| E::Sym(p, t)).collect();
        let layers: Vec<Vec<u8>> = (0..100).map(|_| layer(&e)).collect();
        let (_, warnings, reads) = packages(&layers);
        assert!(reads <= MAX_READS, "{reads} reads");
        assert!(
            warnings.iter().any(|w| w.contains("not followed")),
            "{:?}",
            &warnings[..3]
        );
    }
}
