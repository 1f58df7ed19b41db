//! Components × advisories → findings.
//!
//! Advisories are looked up by (OSV ecosystem, package name) in an
//! [`AdvisoryStore`]: the on-disk index of the vulnerability database
//! (`portcullis-vulndb`), or [`VulnIndex`] in memory. Either way a scan
//! reads only the advisories naming the image's packages, and re-matching
//! stored SBOMs after an import costs a lookup per distinct package
//! ([`MatchCache`]).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::layer::ImageFacts;
use crate::osv::{Advisory, Affected, DistroNote};
use crate::python;
use crate::severity::{debian_status, debian_urgency, resolve, Evidence, Rating, Severity, Vector};

type VersionOrder = fn(&str, &str) -> std::cmp::Ordering;

/// A store could not be read (a damaged or vanished database file).
#[derive(Debug, Error)]
#[error("the vulnerability database could not be read: {0}")]
pub struct LookupError(pub String);

/// What a finding needs from an advisory besides its ranges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// Its own id, then every id that names the same vulnerability.
    pub ids: Vec<String>,
    /// Ids that are related but not the same vulnerability (a DSA's CVEs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The advisory's own `severity` entries (CVSS vectors, Ubuntu's priority).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub own: Vec<crate::osv::Severity>,
    /// The advisory's own severity word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<String>,
    /// Whose word the source it came from may carry; set by the store.
    #[serde(skip)]
    pub publisher: Publisher,
}

/// Which distribution an advisory's source speaks for. A distribution's
/// rating and notes rank first and may lower a finding, so they count only
/// from a source whose every affected entry is that distribution's: a
/// compromised mirror of a language feed cannot publish Debian's word.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Publisher {
    /// Not known (the in-memory index of tests and benchmarks): the
    /// advisory's id alone decides.
    #[default]
    Unchecked,
    /// A source of this distribution's records only (`debian`, `ubuntu`…).
    Distribution(String),
    /// A source of several ecosystems, or of language packages: no
    /// distribution's word.
    Mixed,
}

impl Publisher {
    pub fn speaks_for(&self, distro: &str) -> bool {
        match self {
            Publisher::Unchecked => true,
            Publisher::Distribution(d) => d == distro,
            Publisher::Mixed => false,
        }
    }
}

/// The distribution an OSV ecosystem belongs to, by the name findings
/// show (`Debian:12` → `debian`); `None` for language ecosystems.
pub fn distribution_of(ecosystem: &str) -> Option<String> {
    const DISTRIBUTIONS: &[&str] = &[
        "AlmaLinux",
        "Alpine",
        "Azure Linux",
        "Chainguard",
        "Debian",
        "Mageia",
        "openEuler",
        "openSUSE",
        "Photon OS",
        "Red Hat",
        "Rocky Linux",
        "SUSE",
        "Ubuntu",
        "Wolfi",
    ];
    let name = ecosystem.split(':').next().unwrap_or(ecosystem);
    DISTRIBUTIONS.contains(&name).then(|| distro_name(ecosystem))
}

/// One affected entry of one advisory. The advisory's [`Head`] is asked
/// for only when the entry matches: most entries of a package do not (its
/// installed version is past their fix), so a scan decodes ranges, not
/// summaries.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub head: u64,
    pub affected: Affected,
}

/// Where advisories are looked up.
pub trait AdvisoryStore {
    /// The affected entries naming `package` in `ecosystem` (PyPI names
    /// normalised).
    fn candidates(&self, ecosystem: &str, package: &str) -> Result<Arc<Vec<Candidate>>, LookupError>;
    /// The advisory a candidate belongs to.
    fn head(&self, id: u64) -> Result<Arc<Head>, LookupError>;
    /// CVSS vectors any imported source published under any of `ids`, each
    /// once, in the order of `ids`. One call for all of an advisory's ids:
    /// a kernel DLA names hundreds of CVEs, and a store on disk answers
    /// them in one query.
    fn vectors(&self, ids: &[&str]) -> Result<Vec<Vector>, LookupError>;
    /// The distribution's notes on any of `ids` for `package` in
    /// `ecosystem` (Debian's urgency per CVE, from its per-CVE records),
    /// from sources that speak for the distribution (see [`Publisher`]).
    fn notes(&self, ecosystem: &str, package: &str, ids: &[&str]) -> Result<Vec<DistroNote>, LookupError>;
}

/// What one advisory contributes to an index, computed the same way for
/// the in-memory and the on-disk one.
#[derive(Debug)]
pub struct Rows {
    pub head: Head,
    /// (ecosystem, package, entry) for each affected package.
    pub affected: Vec<(String, String, Affected)>,
    /// (id, vector) for every CVSS vector under each id that names it.
    pub vectors: Vec<(String, Vector)>,
    /// (ecosystem, package, id, note) for each affected entry with a note.
    pub notes: Vec<(String, String, String, DistroNote)>,
}

/// The package name advisories are indexed under.
pub fn index_name(ecosystem: &str, name: &str) -> String {
    if ecosystem == "PyPI" {
        python::normalize_name(name)
    } else {
        name.to_string()
    }
}

/// An advisory's rows; `None` for a withdrawn one, which never matches and
/// whose vectors are not trusted either.
pub fn rows(a: &Advisory) -> Option<Rows> {
    if a.withdrawn.is_some() {
        return None;
    }
    let mut ids: Vec<String> = a.ids().into_iter().map(String::from).collect();
    // osv.dev names a distribution's per-CVE record after the CVE
    // (`DEBIAN-CVE-2023-1234`, upstream `CVE-2023-1234`): the same vulnerability.
    for up in &a.upstream {
        if a.id.ends_with(&format!("-{up}")) && !ids.contains(up) {
            ids.push(up.clone());
        }
    }
    let mut related: Vec<String> = Vec::new();
    let mut seen: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    for r in a.upstream.iter().chain(&a.related) {
        if seen.insert(r) {
            related.push(r.clone());
        }
    }
    let mut vectors = Vec::new();
    for (i, s) in a.severity.iter().enumerate() {
        if !matches!(s.kind.as_str(), "CVSS_V3" | "CVSS_V4") {
            continue;
        }
        // A record may only speak for the database its id belongs to: a
        // feed cannot rank its own vectors as NVD's or GitHub's (which
        // come first) by saying so.
        let claimed = a.specific.severity_origins.get(i).map(String::as_str);
        let origin = match claimed {
            Some(o @ ("nvd" | "nvd:cna" | "cve:cna" | "cve:adp")) if a.id.starts_with("CVE-") => o.to_string(),
            _ if a.id.starts_with("GHSA-") => "ghsa".into(),
            _ => "osv".into(),
        };
        for id in &ids {
            vectors.push((
                id.clone(),
                Vector {
                    origin: origin.clone(),
                    vector: s.score.trim().to_string(),
                },
            ));
        }
    }
    let mut affected = Vec::new();
    let mut notes = Vec::new();
    for aff in &a.affected {
        let Some(p) = &aff.package else { continue };
        let name = index_name(&p.ecosystem, &p.name);
        let mut aff = aff.clone();
        // Only the distribution's own records speak for it: a note in any
        // other feed's record could mark the distribution's findings unimportant.
        if !published_by(&distro_name(&p.ecosystem), &a.id) {
            aff.note = None;
        }
        if let Some(note) = &aff.note {
            for id in &ids {
                notes.push((p.ecosystem.clone(), name.clone(), id.clone(), note.clone()));
            }
        }
        affected.push((p.ecosystem.clone(), name, aff));
    }
    // Vectors published by others are found through `vectors`; a record
    // that is only a severity carrier (NVD, CVE 5) keeps none of its own.
    let origins_tagged = !a.specific.severity_origins.is_empty();
    let head = Head {
        ids,
        related,
        summary: a.summary.clone(),
        reference: a.reference.clone(),
        own: if origins_tagged { Vec::new() } else { a.severity.clone() },
        rating: a.specific.rating.clone(),
        publisher: Publisher::Unchecked,
    };
    Some(Rows {
        head,
        affected,
        vectors,
        notes,
    })
}

/// The advisories in force, in memory: for tests, and as the baseline the
/// on-disk index is benchmarked against.
#[derive(Default)]
pub struct VulnIndex {
    heads: Vec<Arc<Head>>,
    by_package: HashMap<(String, String), Arc<Vec<Candidate>>>,
    vectors: HashMap<String, Vec<Vector>>,
    notes: HashMap<(String, String, String), Vec<DistroNote>>,
}

impl VulnIndex {
    pub fn new(advisories: Vec<Advisory>) -> VulnIndex {
        let mut index = VulnIndex::default();
        let mut by_package: HashMap<(String, String), Vec<Candidate>> = HashMap::new();
        for a in &advisories {
            let Some(rows) = rows(a) else { continue };
            let head = index.heads.len() as u64;
            index.heads.push(Arc::new(rows.head));
            for (eco, pkg, affected) in rows.affected {
                by_package
                    .entry((eco, pkg))
                    .or_default()
                    .push(Candidate { head, affected });
            }
            for (id, v) in rows.vectors {
                index.vectors.entry(id).or_default().push(v);
            }
            for (eco, pkg, id, note) in rows.notes {
                index.notes.entry((eco, pkg, id)).or_default().push(note);
            }
        }
        index.by_package = by_package.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        index
    }

    /// Advisories in the index (withdrawn ones excluded).
    pub fn len(&self) -> usize {
        self.heads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }
}

impl AdvisoryStore for VulnIndex {
    fn candidates(&self, ecosystem: &str, package: &str) -> Result<Arc<Vec<Candidate>>, LookupError> {
        Ok(self
            .by_package
            .get(&(ecosystem.to_string(), package.to_string()))
            .cloned()
            .unwrap_or_default())
    }

    fn head(&self, id: u64) -> Result<Arc<Head>, LookupError> {
        self.heads
            .get(id as usize)
            .cloned()
            .ok_or_else(|| LookupError(format!("no advisory {id}")))
    }

    fn vectors(&self, ids: &[&str]) -> Result<Vec<Vector>, LookupError> {
        let mut out: Vec<Vector> = Vec::new();
        for v in ids.iter().filter_map(|id| self.vectors.get(*id)).flatten() {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        Ok(out)
    }

    fn notes(&self, ecosystem: &str, package: &str, ids: &[&str]) -> Result<Vec<DistroNote>, LookupError> {
        Ok(ids
            .iter()
            .filter_map(|id| {
                self.notes
                    .get(&(ecosystem.to_string(), package.to_string(), id.to_string()))
            })
            .flatten()
            .cloned()
            .collect())
    }
}

/// One vulnerability in one component, with every id it goes by.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finding {
    /// The first advisory's own id, then its aliases and those of any
    /// advisory merged into this finding for naming the same vulnerability.
    pub ids: Vec<String>,
    /// Ids that are related but not the same vulnerability (a DSA's CVEs),
    /// and distribution advisories folded into their CVEs' findings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub severity: Severity,
    /// Where the severity came from: `debian`, `ubuntu`, `almalinux`…,
    /// `advisory` (the matched record's own), `ghsa`, `nvd`, `cve:cna`,
    /// `cve:adp`, `nvd:cna`, `osv`; absent when Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_source: Option<String>,
    /// The CVSS vector the severity was computed from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_vector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_score: Option<f64>,
    /// The distribution's own label when it does not plan a security fix
    /// (`unimportant`, `no-dsa`, `postponed`, `ignored`, `end-of-life`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro_status: Option<String>,
    pub package: String,
    pub version: String,
    /// The component's package URL.
    pub purl: String,
    /// The OSV ecosystem the match was made in (`Debian:11`).
    pub ecosystem: String,
    /// The lowest version that fixes it (for merged advisories, the
    /// highest of their fixes, since all must be applied).
    pub fixed_version: Option<String>,
    /// The layer that introduced the component.
    pub layer: String,
    /// The file the component was found in.
    pub path: String,
    /// The advisory's page (see `Advisory::reference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

pub use crate::distro::distro_ecosystem;

/// Every vulnerability in the image's components, worst first.
///
/// Distribution advisories (Debian's DSA/DLA, Alpine's secdb) name *source*
/// packages (dpkg `Source:`, apk origin) and apply to one release, so each
/// package is looked up by its source name and version in the ecosystem of
/// the image's own release. Language packages are looked up in their
/// ecosystem's advisories (PyPI by normalised name).
pub fn match_image(image: &ImageFacts, store: &dyn AdvisoryStore) -> Result<Vec<Finding>, LookupError> {
    match_image_with(image, store, &mut MatchCache::default())
}

/// What matching has looked up and worked out, remembered across the
/// images of one re-match, which share most of their packages. The cache
/// belongs to one store: make a new one when the database changes.
#[derive(Default)]
pub struct MatchCache {
    candidates: HashMap<(String, String), Arc<Vec<Candidate>>>,
    /// Which candidates include a version, with the fix to upgrade to.
    hits: HashMap<(String, String, String), Arc<Vec<(usize, Option<String>)>>>,
    /// The rating and label of a candidate (by index) of a package.
    ratings: HashMap<(String, String, usize), (Rating, Option<String>)>,
    heads: HashMap<u64, Arc<Head>>,
}

/// [`match_image`], remembering lookups and results in `cache`.
pub fn match_image_with(
    image: &ImageFacts,
    store: &dyn AdvisoryStore,
    cache: &mut MatchCache,
) -> Result<Vec<Finding>, LookupError> {
    let mut out = Vec::new();
    let distro = image.os.as_ref().and_then(distro_ecosystem);
    for c in &image.components {
        let p = &c.package;
        let (ecosystem, os_package) = match (p.ecosystem.osv_name(), &distro) {
            (Some(name), _) => (name.to_string(), false),
            (None, Some((name, manager))) if *manager == p.ecosystem => (name.clone(), true),
            _ => continue,
        };
        let cmp = p.ecosystem.version_order();
        let key = (ecosystem.clone(), p.source_name.clone());
        let candidates = match cache.candidates.get(&key) {
            Some(c) => c.clone(),
            None => {
                let found = store.candidates(&key.0, &key.1)?;
                cache.candidates.insert(key.clone(), found.clone());
                found
            }
        };
        if candidates.is_empty() {
            continue;
        }
        let hits = cache
            .hits
            .entry((key.0.clone(), key.1.clone(), p.source_version.clone()))
            .or_insert_with(|| {
                Arc::new(
                    candidates
                        .iter()
                        .enumerate()
                        .filter(|(_, cand)| cand.affected.includes(&p.source_version, cmp))
                        .map(|(i, cand)| (i, cand.affected.fixed_after(&p.source_version, cmp).map(String::from)))
                        .collect(),
                )
            })
            .clone();
        let mut found: Vec<Finding> = Vec::new();
        for (i, fixed) in hits.iter() {
            let cand = &candidates[*i];
            let head = match cache.heads.get(&cand.head) {
                Some(h) => h.clone(),
                None => {
                    let h = store.head(cand.head)?;
                    cache.heads.insert(cand.head, h.clone());
                    h
                }
            };
            let rating_key = (key.0.clone(), key.1.clone(), *i);
            let (rating, status) = match cache.ratings.get(&rating_key) {
                Some(r) => r.clone(),
                None => {
                    let r = rate(store, &head, cand, &ecosystem, &key.1, os_package)?;
                    cache.ratings.insert(rating_key, r.clone());
                    r
                }
            };
            found.push(Finding {
                ids: head.ids.clone(),
                related: head.related.clone(),
                summary: head.summary.clone(),
                severity: rating.severity,
                severity_source: rating.source,
                cvss_vector: rating.vector,
                cvss_score: rating.score,
                distro_status: status,
                package: p.name.clone(),
                version: p.version.clone(),
                purl: c.purl.clone(),
                ecosystem: ecosystem.clone(),
                fixed_version: fixed.clone(),
                layer: c.layer.clone(),
                path: c.path.clone(),
                reference: head.reference.clone(),
            });
        }
        out.extend(fold_advisories(merge_aliases(found, cmp)));
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.package.cmp(&b.package))
            .then_with(|| a.ids.cmp(&b.ids))
    });
    Ok(out)
}

/// The distribution that publishes an ecosystem's advisories, by the name
/// a finding's `severity_source` shows (`Debian:12` → `debian`).
/// Whether the advisory called `id` is the distribution's own: the
/// prefixes its security team publishes under. Its rating and notes count
/// as the distribution's word (rank 1); another feed's do not.
fn published_by(distro: &str, id: &str) -> bool {
    let prefixes: &[&str] = match distro {
        "debian" => &["DEBIAN-", "DSA-", "DLA-", "DTSA-"],
        "ubuntu" => &["UBUNTU-", "USN-", "LSN-"],
        "almalinux" => &["ALSA-", "ALBA-", "ALEA-"],
        "rocky" => &["RLSA-", "RLBA-", "RLEA-", "RXSA-"],
        "redhat" => &["RHSA-", "RHBA-", "RHEA-"],
        "suse" | "opensuse" => &["SUSE-", "openSUSE-"],
        _ => &[],
    };
    prefixes.iter().any(|p| id.starts_with(p))
}

fn distro_name(ecosystem: &str) -> String {
    let name = ecosystem.split(':').next().unwrap_or(ecosystem);
    match name {
        "Rocky Linux" => "rocky".into(),
        "Red Hat" => "redhat".into(),
        other => other.to_ascii_lowercase().replace(' ', "-"),
    }
}

/// A candidate's severity and distribution label; see [`resolve`].
fn rate(
    store: &dyn AdvisoryStore,
    head: &Head,
    cand: &Candidate,
    ecosystem: &str,
    package: &str,
    os_package: bool,
) -> Result<(Rating, Option<String>), LookupError> {
    let distro = distro_name(ecosystem);
    let mut status = None;
    let distro_rating = if !os_package || !head.publisher.speaks_for(&distro) {
        None
    } else if distro == "debian" {
        // Debian's per-CVE records carry the urgency; a DSA or DLA takes
        // the worst urgency of the CVEs it fixes, from those records.
        match &cand.affected.note {
            Some(note) => {
                status = debian_status(note);
                note.urgency.as_deref().and_then(debian_urgency)
            }
            None => {
                let ids: Vec<&str> = head.ids.iter().chain(&head.related).map(String::as_str).collect();
                let notes = store.notes(ecosystem, package, &ids)?;
                notes
                    .iter()
                    .filter_map(|n| n.urgency.as_deref().and_then(debian_urgency))
                    .max()
            }
        }
    } else if !head.ids.first().is_some_and(|id| published_by(&distro, id)) {
        None
    } else if distro == "ubuntu" {
        head.own
            .iter()
            .find(|s| s.kind == "Ubuntu")
            .and_then(|s| Severity::from_rating(&s.score))
    } else {
        // Red Hat, AlmaLinux and Rocky rate their errata, in the record
        // or in front of its title ("Important: kernel security update").
        head.rating.as_deref().and_then(Severity::from_rating).or_else(|| {
            let summary = head.summary.as_deref()?;
            Severity::from_rating(summary.split_once(':')?.0)
        })
    };
    let ids: Vec<&str> = head.ids.iter().chain(&head.related).map(String::as_str).collect();
    let elsewhere = store.vectors(&ids)?;
    let rating = resolve(&Evidence {
        distro: Some((distro.as_str(), distro_rating.unwrap_or(Severity::Unknown))),
        own: &head.own,
        own_rating: head.rating.as_deref(),
        elsewhere: &elsewhere,
    });
    Ok((rating, status))
}

/// Findings for one component that share any id are one vulnerability,
/// and so are a Debian regression update and the advisory it repairs (the
/// same number, revision 1).
fn merge_aliases(found: Vec<Finding>, cmp: VersionOrder) -> Vec<Finding> {
    let overlap = |a: &Finding, b: &Finding| {
        a.ids.iter().any(|id| b.ids.contains(id))
            || [(a, b), (b, a)].into_iter().any(|(r, other)| {
                regression_of(r).is_some_and(|stem| other.ids.iter().any(|id| debian_stem(id) == (Some(stem), 1)))
            })
    };
    let mut merged: Vec<Finding> = Vec::new();
    for f in found {
        let mut f = f;
        // Absorb every earlier group this one overlaps; it may join several.
        let mut k = 0;
        while k < merged.len() {
            if overlap(&merged[k], &f) {
                let g = merged.swap_remove(k);
                f = join(g, f, cmp);
            } else {
                k += 1;
            }
        }
        merged.push(f);
    }
    merged
}

/// `DSA-5682-2` → (`DSA-5682`, 2): a Debian advisory's number and revision.
fn debian_stem(id: &str) -> (Option<&str>, u32) {
    if !(id.starts_with("DSA-") || id.starts_with("DLA-")) {
        return (None, 0);
    }
    match id.rsplit_once('-') {
        Some((stem, rev)) if stem.len() > 4 => (Some(stem), rev.parse().unwrap_or(0)),
        _ => (None, 0),
    }
}

/// The advisory a finding repairs when it is a Debian regression update
/// (`DSA-5682-2`) that names no vulnerability of its own: its severity is
/// the repaired advisory's, so it joins that finding rather than stand
/// alone, unrated.
fn regression_of(f: &Finding) -> Option<&str> {
    // Only an unrated one: a record that rates itself (any feed can name
    // itself DSA-N-9) must not lend its rating to the advisory it names.
    if f.severity != Severity::Unknown || f.distro_status.is_some() {
        return None;
    }
    match (f.ids.as_slice(), f.related.is_empty()) {
        ([id], true) => match debian_stem(id) {
            (Some(stem), rev) if rev >= 2 => Some(stem),
            _ => None,
        },
        _ => None,
    }
}

/// A distribution advisory (DSA, DLA) whose every CVE is already a finding
/// of the same component is folded into those findings (listed in their
/// `related`), so one vulnerability is not counted twice; one naming a CVE
/// not otherwise found stays a finding of its own.
///
/// Folding never hides or softens anything: a finding is folded only into
/// findings that stay (worked out to a fixed point, so two findings naming
/// each other, or a chain, fold nothing they depend on), that do not name
/// it back, and that are at least as severe.
fn fold_advisories(mut found: Vec<Finding>) -> Vec<Finding> {
    let names = |f: &Finding, other: &Finding| f.related.iter().any(|r| other.ids.contains(r));
    let mut folded: Vec<bool> = found.iter().map(|f| !f.related.is_empty()).collect();
    loop {
        let mut changed = false;
        for i in 0..found.len() {
            if !folded[i] {
                continue;
            }
            let f = &found[i];
            let kept_cover = f.related.iter().all(|r| {
                found
                    .iter()
                    .enumerate()
                    .any(|(j, o)| j != i && !folded[j] && o.ids.contains(r) && !names(o, f) && o.severity >= f.severity)
            });
            if !kept_cover {
                folded[i] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for i in (0..found.len()).filter(|&i| folded[i]) {
        let (id, related) = (found[i].ids[0].clone(), found[i].related.clone());
        for (j, o) in found.iter_mut().enumerate() {
            if !folded[j] && o.ids.iter().any(|x| related.contains(x)) && !o.related.contains(&id) {
                o.related.push(id.clone());
            }
        }
    }
    let mut i = 0;
    found.retain(|_| {
        i += 1;
        !folded[i - 1]
    });
    found
}

/// Whose rating a merged finding keeps: the distribution's own, else the worse.
fn rating_rank(f: &Finding) -> (bool, Severity, u64) {
    let distro = matches!(
        f.severity_source.as_deref(),
        Some(s) if !crate::severity::ORIGINS.contains(&s) && s != "advisory"
    );
    (distro, f.severity, f.cvss_score.map_or(0, |s| (s * 10.0) as u64))
}

fn join(mut a: Finding, b: Finding, cmp: VersionOrder) -> Finding {
    for id in b.ids.iter() {
        if !a.ids.contains(id) {
            a.ids.push(id.clone());
        }
    }
    for id in b.related.iter() {
        if !a.related.contains(id) && !a.ids.contains(id) {
            a.related.push(id.clone());
        }
    }
    a.related.retain(|r| !a.ids.contains(r));
    if rating_rank(&b) > rating_rank(&a) {
        a.severity = b.severity;
        a.severity_source = b.severity_source;
        a.cvss_vector = b.cvss_vector;
        a.cvss_score = b.cvss_score;
    }
    a.distro_status = a.distro_status.or(b.distro_status);
    a.summary = a.summary.or(b.summary);
    a.reference = a.reference.or(b.reference);
    a.fixed_version = match (a.fixed_version, b.fixed_version) {
        (Some(x), Some(y)) => Some(if cmp(&x, &y).is_ge() { x } else { y }),
        (x, y) => x.or(y),
    };
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Component;
    use crate::os_release::{self, OsRelease};
    use crate::Package;

    fn sample() -> VulnIndex {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/vulndb/sample.osv.jsonl"
        ))
        .unwrap();
        VulnIndex::new(text.lines().map(|l| Advisory::parse(l).unwrap()).collect())
    }

    fn scan(os: &OsRelease, p: &Package, index: &VulnIndex) -> Vec<Finding> {
        scan_in(Some(os), p, index)
    }

    /// One package found in the base layer of an image with this release.
    fn scan_in(os: Option<&OsRelease>, p: &Package, index: &VulnIndex) -> Vec<Finding> {
        let image = ImageFacts {
            os: os.cloned(),
            components: vec![Component {
                package: p.clone(),
                layer: "sha256:base".into(),
                path: "var/lib/dpkg/status".into(),
                purl: String::new(),
            }],
            warnings: vec![],
        };
        match_image(&image, index).unwrap()
    }

    fn pkg(name: &str, version: &str, source: &str, source_version: &str) -> Package {
        Package {
            ecosystem: crate::Ecosystem::Deb,
            name: name.into(),
            version: version.into(),
            architecture: Some("amd64".into()),
            source_name: source.into(),
            source_version: source_version.into(),
            license: None,
        }
    }

    /// Expectations read off the advisories themselves:
    /// DSA-5380-1: xorg-server in Debian:11 fixed in 2:1.20.11-1+deb11u6 (CVE-2023-1393).
    /// DSA-4477-1: zeromq3 in Debian:9 fixed in 4.2.1-4+deb9u2, in Debian:10 in 4.3.1-4+deb10u1.
    /// DSA-3699-1: virtualbox in Debian:8, introduced 0 and never fixed (end of life).
    #[test]
    fn real_debian_advisories() {
        let advisories = sample();
        let os = |v: &str| os_release::parse(&format!("ID=debian\nVERSION_ID=\"{v}\"\n")).unwrap();
        let xserver = |v: &str| pkg("xserver-xorg-core", v, "xorg-server", v);
        let cases: Vec<(OsRelease, Package, Option<(&str, Option<&str>)>)> = vec![
            (
                os("11"),
                xserver("2:1.20.11-1+deb11u5"),
                Some(("DSA-5380-1", Some("2:1.20.11-1+deb11u6"))),
            ),
            (os("11"), xserver("2:1.20.11-1+deb11u6"), None),
            (os("11"), xserver("2:1.20.11-1+deb11u7"), None),
            // The same vulnerable version on another release: that advisory is not about it.
            (os("10"), xserver("2:1.20.11-1+deb11u5"), None),
            (
                os("9"),
                pkg("libzmq5", "4.2.1-4+deb9u1", "zeromq3", "4.2.1-4+deb9u1"),
                Some(("DSA-4477-1", Some("4.2.1-4+deb9u2"))),
            ),
            (
                os("10"),
                pkg("libzmq5", "4.3.1-4", "zeromq3", "4.3.1-4"),
                Some(("DSA-4477-1", Some("4.3.1-4+deb10u1"))),
            ),
            (
                os("10"),
                pkg("libzmq5", "4.3.1-4+deb10u1", "zeromq3", "4.3.1-4+deb10u1"),
                None,
            ),
            // Matched by source name, not by the binary package's name.
            (os("10"), pkg("zeromq3", "4.3.1-4", "libzmq-other", "4.3.1-4"), None),
            (
                os("8"),
                pkg("virtualbox", "5.1.8-dfsg-1", "virtualbox", "5.1.8-dfsg-1"),
                Some(("DSA-3699-1", None)),
            ),
        ];
        for (os, p, want) in cases {
            let found = scan(&os, &p, &advisories);
            let got = found.first().map(|f| (f.ids[0].as_str(), f.fixed_version.as_deref()));
            assert_eq!(
                got, want,
                "{} {} on Debian {:?}",
                p.source_name, p.source_version, os.version_id
            );
            if let Some(f) = found.first() {
                assert_eq!(f.package, p.name);
            }
        }
        let f = scan(&os("11"), &xserver("2:1.20.11-1+deb11u5"), &advisories);
        assert_eq!(f[0].ids, ["DSA-5380-1"]);
        assert_eq!(f[0].related, ["CVE-2023-1393"], "a DSA's CVEs are related, not aliases");
        assert_eq!(
            (f[0].layer.as_str(), f[0].path.as_str()),
            ("sha256:base", "var/lib/dpkg/status")
        );
        let alpine = os_release::parse("ID=alpine\nVERSION_ID=3.11.6\n").unwrap();
        assert!(scan(&alpine, &xserver("1"), &advisories).is_empty());
        let centos = os_release::parse("ID=centos\nVERSION_ID=7\n").unwrap();
        assert!(scan(&centos, &xserver("2:1.20.11-1+deb11u5"), &advisories).is_empty());
    }

    /// ALPINE-CVE-2019-14904: ansible in Alpine:v3.11 fixed in 2.9.3-r0.
    /// ALPINE-CVE-2016-9932: xen fixed in 4.7.1-r3 for v3.5 … v3.11, 4.6.3-r6 for v3.4.
    #[test]
    fn real_alpine_advisories() {
        let advisories = sample();
        let os = |v: &str| os_release::parse(&format!("ID=alpine\nVERSION_ID={v}\n")).unwrap();
        let apk = |name: &str, v: &str, origin: &str| Package {
            ecosystem: crate::Ecosystem::Apk,
            ..pkg(name, v, origin, v)
        };
        let ids = |f: &[Finding]| -> Vec<String> { f.iter().map(|x| x.ids[0].clone()).collect() };
        let found = scan(&os("3.11.6"), &apk("ansible", "2.9.2-r0", "ansible"), &advisories);
        assert_eq!(ids(&found), ["ALPINE-CVE-2019-14904"]);
        assert_eq!(
            found[0].ids,
            ["ALPINE-CVE-2019-14904", "CVE-2019-14904"],
            "alias and upstream name one CVE once"
        );
        assert_eq!(found[0].fixed_version.as_deref(), Some("2.9.3-r0"));
        assert!(scan(&os("3.11.6"), &apk("ansible", "2.9.3-r0", "ansible"), &advisories).is_empty());
        assert!(
            scan(&os("3.10.1"), &apk("ansible", "2.9.2-r0", "ansible"), &advisories).is_empty(),
            "only v3.11 is listed"
        );

        // xen 4.7.1-r4 on v3.11: past CVE-2016-9932's fix (r3), before XSA-207's (r5).
        let found = scan(&os("3.11.0"), &apk("xen-libs", "4.7.1-r4", "xen"), &advisories);
        assert_eq!(ids(&found), ["ALPINE-XSA-207"]);
        let found = scan(&os("3.4.6"), &apk("xen", "4.6.3-r5", "xen"), &advisories);
        let mut got = ids(&found);
        got.sort();
        assert_eq!(got, ["ALPINE-CVE-2016-9932", "ALPINE-XSA-207"]);
    }

    /// Folding a DSA into its CVE's finding never hides a finding: two
    /// findings naming each other both stay, a DSA more severe than the CVE
    /// finding stays, and a chain folds only into what stays.
    #[test]
    fn folding_never_hides_a_finding() {
        let f = |ids: &[&str], related: &[&str], severity: Severity| Finding {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            related: related.iter().map(|s| s.to_string()).collect(),
            summary: None,
            severity,
            severity_source: None,
            cvss_vector: None,
            cvss_score: None,
            distro_status: None,
            package: "openssl".into(),
            version: "1".into(),
            purl: String::new(),
            ecosystem: "Debian:12".into(),
            fixed_version: None,
            layer: String::new(),
            path: String::new(),
            reference: None,
        };
        use Severity::*;
        let ids = |v: Vec<Finding>| -> Vec<String> { v.into_iter().map(|f| f.ids[0].clone()).collect() };
        let cases: Vec<(Vec<Finding>, Vec<&str>)> = vec![
            // The ordinary fold.
            (
                vec![f(&["DSA-1"], &["CVE-A"], Low), f(&["DEBIAN-CVE-A", "CVE-A"], &[], Low)],
                vec!["DEBIAN-CVE-A"],
            ),
            // Mutual naming (an injected record related to the DSA): both stay.
            (
                vec![
                    f(&["DSA-1"], &["CVE-A"], High),
                    f(&["DEBIAN-CVE-A", "CVE-A", "X"], &["DSA-1"], High),
                ],
                vec!["DSA-1", "DEBIAN-CVE-A"],
            ),
            // A DSA rated worse than the CVE finding is not softened into it.
            (
                vec![f(&["DSA-1"], &["CVE-A"], High), f(&["DEBIAN-CVE-A", "CVE-A"], &[], Low)],
                vec!["DSA-1", "DEBIAN-CVE-A"],
            ),
            // A chain X -> Z -> CVE-A: Z folds into CVE-A; X names only Z,
            // which goes, so X stays.
            (
                vec![
                    f(&["X"], &["Z"], Low),
                    f(&["Z"], &["CVE-A"], Low),
                    f(&["CVE-A"], &[], Low),
                ],
                vec!["X", "CVE-A"],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(ids(fold_advisories(input.clone())), want, "{input:?}");
        }
    }

    /// Where a vector ranks follows the record's id, not what the record
    /// claims: only CVE records speak for NVD and CVE 5, only GHSA ones
    /// for GitHub.
    #[test]
    fn a_record_cannot_claim_another_databases_rank() {
        let record = |id: &str, origin: &str| {
            Advisory::parse(&format!(
                r#"{{"id":"{id}","aliases":["CVE-9"],"severity":[{{"type":"CVSS_V3","score":"CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:L/I:N/A:N"}}],"database_specific":{{"severity_origins":["{origin}"]}}}}"#
            ))
            .unwrap()
        };
        let cases = [
            ("CVE-9", "nvd", "nvd"),
            ("CVE-9", "cve:adp", "cve:adp"),
            ("CVE-9", "ghsa", "osv"),
            ("CVE-9", "made-up", "osv"),
            ("EVIL-1", "nvd", "osv"),
            ("EVIL-1", "ghsa", "osv"),
            ("GHSA-xxxx", "nvd", "ghsa"),
        ];
        for (id, claimed, want) in cases {
            let r = rows(&record(id, claimed)).unwrap();
            let origins: Vec<&str> = r.vectors.iter().map(|(_, v)| v.origin.as_str()).collect();
            assert!(
                origins.iter().all(|o| *o == want),
                "{id} claiming {claimed}: {origins:?}"
            );
        }
    }

    /// A distribution's rating and notes count only from the records its
    /// own security team publishes; the same words in another feed's record
    /// are not the distribution's (they could mark its findings unimportant).
    #[test]
    fn only_a_distribution_speaks_for_it() {
        let critical = r#""severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]"#;
        let debian = |id: &str| {
            format!(
                r#"{{"id":"{id}",{critical},"affected":[{{"package":{{"ecosystem":"Debian:12","name":"foo"}},"ecosystem_specific":{{"urgency":"unimportant"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"2-1"}}]}}]}}]}}"#
            )
        };
        let alma = |id: &str| {
            format!(
                r#"{{"id":"{id}","summary":"Low: foo update",{critical},"affected":[{{"package":{{"ecosystem":"AlmaLinux:8","name":"foo"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"2-1.el8"}}]}}]}}]}}"#
            )
        };
        let deb_os = os_release::parse("ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        let alma_os = os_release::parse("ID=\"almalinux\"\nVERSION_ID=\"8.10\"\n").unwrap();
        let rpm = Package {
            ecosystem: crate::Ecosystem::Rpm,
            ..pkg("foo", "1-1.el8", "foo", "1-1.el8")
        };
        let cases: [(String, &OsRelease, Package, (Severity, &str)); 4] = [
            (
                debian("DEBIAN-CVE-2024-1"),
                &deb_os,
                pkg("foo", "1-1", "foo", "1-1"),
                (Severity::Low, "debian"),
            ),
            (
                debian("EVIL-1"),
                &deb_os,
                pkg("foo", "1-1", "foo", "1-1"),
                (Severity::Critical, "advisory"),
            ),
            (alma("ALSA-2024:1"), &alma_os, rpm.clone(), (Severity::Low, "almalinux")),
            (alma("EVIL-2"), &alma_os, rpm, (Severity::Critical, "advisory")),
        ];
        for (record, os, package, want) in cases {
            let index = VulnIndex::new(vec![Advisory::parse(&record).unwrap()]);
            let found = scan(os, &package, &index);
            assert_eq!(found.len(), 1, "{record}");
            let got = (found[0].severity, found[0].severity_source.as_deref().unwrap_or(""));
            assert_eq!(got, want, "{record}");
            let rows = rows(&Advisory::parse(&record).unwrap()).unwrap();
            assert_eq!(
                rows.notes.is_empty(),
                !found[0].ids[0].starts_with("DEBIAN-"),
                "{record}"
            );
        }
    }

    /// Two advisories naming one CVE are one finding; a DSA whose CVEs are
    /// all findings already is folded into them; withdrawn ones never match.
    #[test]
    fn aliases_merge_and_withdrawn_advisories_are_gone() {
        let range = |fixed: &str| {
            format!(
                r#"[{{"package":{{"ecosystem":"Debian:12","name":"foo"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]"#
            )
        };
        let records = [
            format!(
                r#"{{"id":"GHSA-1","aliases":["CVE-1"],"severity":[{{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}}],"affected":{}}}"#,
                range("1.2-1")
            ),
            format!(
                r#"{{"id":"DEBIAN-CVE-1","aliases":["CVE-1"],"database_specific":{{"severity":"low"}},"affected":{}}}"#,
                range("1.3-1")
            ),
            format!(r#"{{"id":"DSA-9","upstream":["CVE-1"],"affected":{}}}"#, range("1.2-1")),
            format!(
                r#"{{"id":"GHSA-2","withdrawn":"2024-01-01T00:00:00Z","affected":{}}}"#,
                range("9")
            ),
        ];
        let index = VulnIndex::new(records.iter().map(|r| Advisory::parse(r).unwrap()).collect());
        assert_eq!(index.len(), 3);
        let os = os_release::parse("ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        let found = scan(&os, &pkg("libfoo1", "1.1-1", "foo", "1.1-1"), &index);
        let got: Vec<(Vec<&str>, Severity, Option<&str>)> = found
            .iter()
            .map(|f| {
                (
                    f.ids.iter().map(String::as_str).collect(),
                    f.severity,
                    f.fixed_version.as_deref(),
                )
            })
            .collect();
        // DSA-9 fixes only CVE-1, which is already a finding: it is folded in.
        assert_eq!(
            got,
            [(vec!["GHSA-1", "CVE-1", "DEBIAN-CVE-1"], Severity::High, Some("1.3-1"))]
        );
        assert_eq!(found[0].cvss_score, Some(7.5));
        assert_eq!(found[0].related, ["DSA-9"]);
        // Past the first fix, only the later advisory still applies.
        let found = scan(&os, &pkg("libfoo1", "1.2-1", "foo", "1.2-1"), &index);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].ids[0].as_str(), found[0].severity),
            ("DEBIAN-CVE-1", Severity::Low)
        );
    }

    /// A Debian regression update that names no CVE (DSA-5682-2, glib2.0,
    /// from debian-dsa-dla.osv.jsonl.gz, abridged) is one finding with the
    /// advisory it repairs: that one's severity, the later fix. Alone, or
    /// naming a CVE of its own, it stays a finding.
    #[test]
    fn regression_updates_join_what_they_repair() {
        let dsa = |id: &str, upstream: &str, fixed: &str| {
            format!(
                r#"{{"id":"{id}","upstream":[{upstream}],"affected":[{{"package":{{"ecosystem":"Debian:12","name":"glib2.0"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
            )
        };
        let cvss =
            |id: &str, vector: &str| format!(r#"{{"id":"{id}","severity":[{{"type":"CVSS_V3","score":"{vector}"}}]}}"#);
        let medium = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:L/I:L/A:N";
        let records = [
            dsa("DSA-5682-1", r#""CVE-2024-34397""#, "2.74.6-2+deb12u1"),
            dsa("DSA-5682-2", "", "2.74.6-2+deb12u2"),
            dsa("DSA-7000-2", "", "2.74.6-2+deb12u3"),
            dsa("DSA-6000-1", r#""CVE-2099-1""#, "2.74.6-2+deb12u1"),
            dsa("DSA-6000-2", r#""CVE-2099-2""#, "2.74.6-2+deb12u2"),
            cvss("CVE-2024-34397", medium),
            cvss("CVE-2099-1", medium),
            // Rated by itself: not a regression to join, whatever its name.
            r#"{"id":"DSA-5682-9","affected":[{"package":{"ecosystem":"Debian:12","name":"glib2.0"},"ecosystem_specific":{"urgency":"low"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"99"}]}]}]}"#.to_string(),
        ];
        let index = VulnIndex::new(records.iter().map(|r| Advisory::parse(r).unwrap()).collect());
        let os = os_release::parse("ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        type Row<'a> = (Vec<&'a str>, Severity, Option<&'a str>);
        let cases: [(&str, Vec<Row>); 2] = [
            (
                "2.74.6-2",
                vec![
                    (
                        vec!["DSA-5682-1", "DSA-5682-2"],
                        Severity::Medium,
                        Some("2.74.6-2+deb12u2"),
                    ),
                    (vec!["DSA-5682-9"], Severity::Low, Some("99")),
                    (vec!["DSA-6000-1"], Severity::Medium, Some("2.74.6-2+deb12u1")),
                    (vec!["DSA-6000-2"], Severity::Unknown, Some("2.74.6-2+deb12u2")),
                    (vec!["DSA-7000-2"], Severity::Unknown, Some("2.74.6-2+deb12u3")),
                ],
            ),
            (
                "2.74.6-2+deb12u1",
                vec![
                    (vec!["DSA-5682-2"], Severity::Unknown, Some("2.74.6-2+deb12u2")),
                    (vec!["DSA-5682-9"], Severity::Low, Some("99")),
                    (vec!["DSA-6000-2"], Severity::Unknown, Some("2.74.6-2+deb12u2")),
                    (vec!["DSA-7000-2"], Severity::Unknown, Some("2.74.6-2+deb12u3")),
                ],
            ),
        ];
        for (version, want) in cases {
            let found = scan(&os, &pkg("libglib2.0-0", version, "glib2.0", version), &index);
            let mut got: Vec<Row> = found
                .iter()
                .map(|f| {
                    (
                        f.ids.iter().map(String::as_str).collect(),
                        f.severity,
                        f.fixed_version.as_deref(),
                    )
                })
                .collect();
            got.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(got, want, "{version}");
        }
    }

    /// ALSA-2025:10991 ("Moderate: microcode_ctl security update"):
    /// microcode_ctl in AlmaLinux:8 fixed in 4:20250512-1.el8_10, related CVE-2024-28956.
    #[test]
    fn real_almalinux_advisory() {
        let index = sample();
        let os = |v: &str| os_release::parse(&format!("ID=\"almalinux\"\nVERSION_ID=\"{v}\"\n")).unwrap();
        let rpm = |v: &str| Package {
            ecosystem: crate::Ecosystem::Rpm,
            ..pkg("microcode_ctl", v, "microcode_ctl", v)
        };
        let found = scan(&os("8.10"), &rpm("4:20240531-1.el8_10"), &index);
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(
            (
                f.ids[0].as_str(),
                f.fixed_version.as_deref(),
                f.severity,
                f.ecosystem.as_str()
            ),
            (
                "ALSA-2025:10991",
                Some("4:20250512-1.el8_10"),
                Severity::Medium,
                "AlmaLinux:8"
            )
        );
        assert_eq!(f.related, ["CVE-2024-28956"]);
        assert!(scan(&os("8.10"), &rpm("4:20250512-1.el8_10"), &index).is_empty());
        assert!(scan(&os("8.10"), &rpm("4:20250812-1.el8_10"), &index).is_empty());
        assert!(
            scan(&os("9.4"), &rpm("4:20240531-1.el9_4"), &index).is_empty(),
            "an AlmaLinux 8 erratum"
        );
        // A newer epoch wins over any date.
        assert!(scan(&os("8.10"), &rpm("5:20200101-1.el8"), &index).is_empty());
    }

    /// Expectations read off the sample advisories:
    /// PYSEC-2021-335: accesscontrol affected in [4.0, 4.3) and [5.0, 5.2).
    /// PYSEC-2022-42969: py affected up to and including 1.11.0, no fix.
    /// PYSEC-2024-1: gratient, only version 0.5 listed.
    /// PYSEC-2022-15: loguru, withdrawn.
    /// NSWG-ECO-500: mqtt-packet fixed in 3.5.1, 4.1.3, 5.6.1, 6.1.2 (CVSS 3.0 …/A:H = 7.5).
    /// NSWG-ECO-151: passport-azure-ad [1.0.0, 1.4.6) and exactly 2.0.0.
    /// NSWG-ECO-1: bassmaster up to 1.5.1 (CVSS 3.0 …/C:L/I:L/A:N = 6.5).
    #[test]
    fn real_python_and_npm_advisories() {
        let index = sample();
        let lang = |eco: crate::Ecosystem, name: &str, version: &str| {
            let source = if eco == crate::Ecosystem::Python {
                python::normalize_name(name)
            } else {
                name.to_string()
            };
            Package {
                ecosystem: eco,
                architecture: None,
                ..pkg(name, version, &source, version)
            }
        };
        use crate::Ecosystem::{Cargo, Go, Npm, Python};
        let cases: &[(crate::Ecosystem, &str, &str, Option<(&str, Option<&str>, Severity)>)] = &[
            (
                Python,
                "AccessControl",
                "4.2",
                Some(("PYSEC-2021-335", Some("4.3"), Severity::Unknown)),
            ),
            (Python, "AccessControl", "4.3", None),
            (
                Python,
                "AccessControl",
                "5.1",
                Some(("PYSEC-2021-335", Some("5.2"), Severity::Unknown)),
            ),
            (Python, "AccessControl", "5.2", None),
            (Python, "AccessControl", "3.9", None),
            (
                Python,
                "py",
                "1.11.0",
                Some(("PYSEC-2022-42969", None, Severity::Unknown)),
            ),
            (Python, "py", "1.11.1", None),
            (
                Python,
                "gratient",
                "0.5",
                Some(("PYSEC-2024-1", None, Severity::Unknown)),
            ),
            (Python, "gratient", "0.6", None),
            (Python, "loguru", "0.5.3", None),
            (
                Npm,
                "mqtt-packet",
                "4.1.2",
                Some(("NSWG-ECO-500", Some("4.1.3"), Severity::High)),
            ),
            (Npm, "mqtt-packet", "4.1.3", None),
            (
                Npm,
                "mqtt-packet",
                "6.1.1",
                Some(("NSWG-ECO-500", Some("6.1.2"), Severity::High)),
            ),
            (Npm, "mqtt-packet", "7.0.0", None),
            (
                Npm,
                "passport-azure-ad",
                "1.4.5",
                Some(("NSWG-ECO-151", Some("1.4.6"), Severity::Critical)),
            ),
            (
                Npm,
                "passport-azure-ad",
                "2.0.0",
                Some(("NSWG-ECO-151", None, Severity::Critical)),
            ),
            (Npm, "passport-azure-ad", "2.0.1", None),
            (Npm, "bassmaster", "1.5.1", Some(("NSWG-ECO-1", None, Severity::Medium))),
            // A PyPI name in npm is another package.
            (Npm, "py", "1.0.0", None),
            // GO-2020-0001: gin fixed in 1.6.0. GO-2023-2044: stdlib [1.21.0-0, 1.21.1).
            (
                Go,
                "github.com/gin-gonic/gin",
                "1.5.0",
                Some(("GO-2020-0001", Some("1.6.0"), Severity::Unknown)),
            ),
            (Go, "github.com/gin-gonic/gin", "1.6.0", None),
            (
                Go,
                "stdlib",
                "1.21.0",
                Some(("GO-2023-2044", Some("1.21.1"), Severity::Unknown)),
            ),
            (Go, "stdlib", "1.21.1", None),
            (Go, "stdlib", "1.20.8", None),
            // RUSTSEC-2017-0002: hyper [0.0.0-0, 0.9.18) and [0.10.0, 0.10.2), CVSS 3.0 …/I:L = 5.3.
            (
                Cargo,
                "hyper",
                "0.10.1",
                Some(("RUSTSEC-2017-0002", Some("0.10.2"), Severity::Medium)),
            ),
            (
                Cargo,
                "hyper",
                "0.9.17",
                Some(("RUSTSEC-2017-0002", Some("0.9.18"), Severity::Medium)),
            ),
            (Cargo, "hyper", "0.9.18", None),
            // RUSTSEC-2016-0001: openssl below 0.9.0, CVSS 3.0 AV:N/AC:H/…/C:H/I:H/A:H = 8.1.
            (
                Cargo,
                "openssl",
                "0.8.3",
                Some(("RUSTSEC-2016-0001", Some("0.9.0"), Severity::High)),
            ),
        ];
        for (eco, name, version, want) in cases {
            let found = scan_in(None, &lang(*eco, name, version), &index);
            let got = found
                .first()
                .map(|f| (f.ids[0].as_str(), f.fixed_version.as_deref(), f.severity));
            assert_eq!(got, *want, "{name} {version}");
            assert!(found.len() <= 1, "{found:?}");
        }
    }

    /// The shared data has no Maven advisories; this one is written the way
    /// GitHub's OSV export writes them (`group:artifact`, ECOSYSTEM ranges),
    /// and the expectations follow Maven's order (2.9.10 < 2.9.10.1 < 2.10.0-rc1 < 2.10.0).
    #[test]
    fn maven_packages_match_group_and_artifact() {
        let advisory = r#"{"id":"GHSA-test-maven","aliases":["CVE-2019-0000"],"affected":[{"package":{"ecosystem":"Maven","name":"com.fasterxml.jackson.core:jackson-databind"},
            "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"2.9.0"},{"fixed":"2.9.10.1"},{"introduced":"2.10.0-rc1"},{"fixed":"2.10.0"}]}]}]}"#;
        let index = VulnIndex::new(vec![Advisory::parse(advisory).unwrap()]);
        let jar = |name: &str, v: &str| Package {
            ecosystem: crate::Ecosystem::Maven,
            architecture: None,
            ..pkg(name, v, name, v)
        };
        let cases = [
            (
                "com.fasterxml.jackson.core:jackson-databind",
                "2.9.10",
                Some("2.9.10.1"),
            ),
            ("com.fasterxml.jackson.core:jackson-databind", "2.9.10.1", None),
            (
                "com.fasterxml.jackson.core:jackson-databind",
                "2.10.0-rc2",
                Some("2.10.0"),
            ),
            ("com.fasterxml.jackson.core:jackson-databind", "2.10.0", None),
            ("com.fasterxml.jackson.core:jackson-databind", "2.8.11", None),
            ("jackson-databind", "2.9.10", None),
        ];
        for (name, version, fixed) in cases {
            let found = scan_in(None, &jar(name, version), &index);
            assert_eq!(
                found.first().map(|f| f.fixed_version.as_deref()),
                fixed.map(Some),
                "{name} {version}"
            );
        }
    }
}
