//! Page handlers: each reads what it shows from the management API as the
//! signed-in user and renders one template. Forms post here, are checked
//! for the session's CSRF token, call the API, and redirect back with a
//! message (post, redirect, get).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Multipart, Query};
use axum::http::Method;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::session::SignedIn;
use crate::view::{self, enc, Bar, Shield};
use crate::UiError;

type Page = Result<Response, UiError>;

/// What every page's frame needs: who is signed in, the token for the
/// sign-out form, and a message from the form just posted.
pub(crate) struct Chrome {
    pub user: String,
    pub admin: bool,
    pub csrf: String,
    pub flash: Option<String>,
}

pub(crate) fn chrome(who: &SignedIn, flash: Option<String>) -> Chrome {
    Chrome {
        user: who.name.clone(),
        admin: who.admin,
        csrf: who.csrf.clone(),
        flash,
    }
}

pub(crate) fn render(t: impl Template) -> Page {
    Ok(Html(t.render()?).into_response())
}

pub(crate) fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What the signed-in user may do in `repo` (`push`, `delete`, `admin`),
/// as the API says: pages offer only those forms.
pub(crate) async fn caller_may(who: &SignedIn, repo: &str) -> Result<Value, UiError> {
    let info = who.get(&format!("/api/v1/repositories/{}", enc(repo))).await?;
    Ok(info["caller_may"].clone())
}

pub(crate) fn back(to: String, message: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}msg={}", enc(message))).into_response()
}

// ---- repositories ---------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
    msg: Option<String>,
}

pub struct RepoRow {
    name: String,
    visibility: String,
    tags: i64,
    size: String,
    /// Width of the size bar, relative to the largest on the page.
    size_bar: u32,
    last_push: String,
    shield: Shield,
}

#[derive(Template)]
#[template(path = "repositories.html")]
struct RepositoriesPage {
    chrome: Chrome,
    q: String,
    rows: Vec<RepoRow>,
    next: Option<String>,
}

pub async fn repositories(who: SignedIn, Query(p): Query<ListQuery>) -> Page {
    let mut path = format!("/api/v1/repositories?limit=50&q={}", enc(&p.q));
    if let Some(a) = &p.after {
        path.push_str(&format!("&after={}", enc(a)));
    }
    let v = who.get(&path).await?;
    let largest = view::items(&v["repositories"])
        .filter_map(|r| r["size"].as_i64())
        .max()
        .unwrap_or(0)
        .max(1);
    let rows = view::items(&v["repositories"])
        .map(|r| RepoRow {
            name: s(&r["name"]),
            visibility: s(&r["visibility"]),
            tags: r["tags"].as_i64().unwrap_or(0),
            size: view::size(r["size"].as_i64().unwrap_or(0)),
            size_bar: (r["size"].as_i64().unwrap_or(0) * 120 / largest).max(1) as u32,
            last_push: view::time_of(&r["last_push"]),
            shield: if r["scanned"].as_i64().unwrap_or(0) == 0 {
                Shield {
                    class: "none",
                    text: "nothing scanned".into(),
                }
            } else {
                view::counts_shield(&r["worst"])
            },
        })
        .collect();
    render(RepositoriesPage {
        chrome: chrome(&who, p.msg),
        q: p.q,
        rows,
        next: v["next"].as_str().map(str::to_string),
    })
}

// ---- one repository -------------------------------------------------------

#[derive(Deserialize)]
pub struct RepoQuery {
    name: String,
    after: Option<String>,
    msg: Option<String>,
}

pub struct TagRow {
    name: String,
    digest: String,
    short: String,
    size: String,
    pushed_at: String,
    pushed_by: String,
    shield: Shield,
    promoted: Option<String>,
    signed: Option<String>,
    unverified_signature: bool,
    artifact: bool,
    /// Cosign's `sha256-<hex>.sig|.att|.sbom` tags about this image: shown
    /// under it, not as tags of their own.
    accessories: Vec<Accessory>,
    /// For an accessory tag: the image it is about, and what it is.
    accessory_of: Option<(String, String)>,
}

pub struct Accessory {
    /// `signature`, `attestation` or `SBOM`.
    kind: String,
    tag: String,
    digest: String,
}

/// Moves each accessory tag (the API's `accessory_of`: named for an image
/// and holding a signature, attestation or SBOM) under the row of the
/// image it is about, when that image is on the page; the others stay rows.
fn group_accessories(rows: Vec<TagRow>) -> Vec<TagRow> {
    let (accessories, mut images): (Vec<TagRow>, Vec<TagRow>) =
        rows.into_iter().partition(|r| r.accessory_of.is_some());
    let mut orphans = Vec::new();
    for mut a in accessories {
        let (subject, kind) = a.accessory_of.take().expect("partitioned on it");
        match images.iter_mut().find(|r| r.digest == subject) {
            Some(image) => image.accessories.push(Accessory {
                kind,
                tag: a.name,
                digest: a.digest,
            }),
            None => orphans.push(a),
        }
    }
    images.extend(orphans);
    images.sort_by(|a, b| a.name.cmp(&b.name));
    images
}

#[derive(Template)]
#[template(path = "repository.html")]
struct RepositoryPage {
    chrome: Chrome,
    name: String,
    visibility: String,
    rows: Vec<TagRow>,
    next: Option<String>,
    /// Findings of the images pushed each of the last 30 days.
    history: Vec<view::Rect>,
}

pub async fn repository(who: SignedIn, Query(p): Query<RepoQuery>) -> Page {
    let api = format!("/api/v1/repositories/{}", enc(&p.name));
    let info = who.get(&api).await?;
    let mut path = format!("{api}/tags?limit=100");
    if let Some(a) = &p.after {
        path.push_str(&format!("&after={}", enc(a)));
    }
    let v = who.get(&path).await?;
    let h = who.get(&format!("{api}/history?days=30")).await?;
    let history = view::findings_chart(&h["days"], h["since"].as_i64().unwrap_or(0), 30, 12, 48);
    let rows = view::items(&v["tags"])
        .map(|t| {
            let promoted = t["promoted_from"].as_object().map(|p| {
                format!(
                    "from {}:{} by policy {}",
                    s(&p["repository"]),
                    s(&p["tag"]),
                    s(&p["policy_id"])
                )
            });
            let signed = (t["signed"]["status"] == "verified").then(|| {
                format!(
                    "by {} (key {})",
                    s(&t["signed"]["account"]),
                    view::short(t["signed"]["key_id"].as_str().unwrap_or(""))
                )
            });
            TagRow {
                name: s(&t["name"]),
                digest: s(&t["digest"]),
                short: view::short(t["digest"].as_str().unwrap_or("")),
                size: view::size(t["size"].as_i64().unwrap_or(0)),
                pushed_at: view::time_of(&t["pushed_at"]),
                pushed_by: s(&t["pushed_by"]),
                shield: view::shield(&t["scan"]),
                promoted,
                signed,
                unverified_signature: t["signed"]["status"] == "unverified",
                artifact: t["artifact"] == true,
                accessories: Vec::new(),
                accessory_of: t["accessory_of"].as_object().map(|a| (s(&a["digest"]), s(&a["kind"]))),
            }
        })
        .collect();
    let rows = group_accessories(rows);
    render(RepositoryPage {
        chrome: chrome(&who, p.msg),
        visibility: s(&info["visibility"]),
        name: p.name,
        rows,
        next: v["next"].as_str().map(str::to_string),
        history,
    })
}

// ---- one image ------------------------------------------------------------

#[derive(Deserialize)]
pub struct ImageQuery {
    repository: String,
    digest: String,
    tag: Option<String>,
    tab: Option<String>,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    ecosystem: String,
    #[serde(default)]
    sort: String,
    msg: Option<String>,
}

pub struct FindingRow {
    id: String,
    link: String,
    severity: String,
    /// Who rated it (`debian`, `nvd`, `cve:cna`…), empty when Unknown.
    source: String,
    /// The CVSS vector behind the rating, shown on hover.
    vector: String,
    package: String,
    version: String,
    fixed: String,
    path: String,
}

pub struct LayerRow {
    index: usize,
    digest: String,
    short: String,
    size: String,
    created_by: String,
    components: i64,
    findings: Vec<FindingRow>,
}

pub struct ComponentRow {
    name: String,
    version: String,
    ecosystem: String,
    license: String,
    path: String,
    layer: String,
    finding: Option<FindingRow>,
}

#[derive(Template)]
#[template(path = "image.html")]
struct ImagePage {
    chrome: Chrome,
    repository: String,
    digest: String,
    tag: String,
    tab: String,
    status: String,
    error: String,
    shield: Shield,
    bars: Vec<Bar>,
    layers: Vec<LayerRow>,
    components: Vec<ComponentRow>,
    ecosystems: Vec<String>,
    severity: String,
    ecosystem: String,
    sort: String,
    warnings: Vec<String>,
    severities: &'static [&'static str],
    may_scan: bool,
    referrers: Vec<ReferrerRow>,
    /// For an index: each platform's image, its digest and shield.
    platforms: Vec<(String, String, Shield)>,
}

pub struct ReferrerRow {
    kind: String,
    digest: String,
    short: String,
    size: String,
}

/// What a referrer is, in words, by its artifact type.
fn referrer_kind(artifact_type: &str) -> String {
    match artifact_type {
        t if t.starts_with("application/vnd.dev.sigstore.bundle") => "signature (sigstore bundle)".into(),
        t if t.contains("spdx") => "SBOM (SPDX)".into(),
        t if t.contains("cyclonedx") => "SBOM (CycloneDX)".into(),
        t if t.contains("in-toto") || t.contains("attestation") => "attestation".into(),
        "" => "artifact".into(),
        t => t.to_string(),
    }
}

impl ImagePage {
    fn severity_is(&self, sv: &str) -> bool {
        self.severity == sv
    }

    fn base_link(&self) -> String {
        format!(
            "/ui/image?repository={}&digest={}&tag={}",
            enc(&self.repository),
            enc(&self.digest),
            enc(&self.tag)
        )
    }
}

fn finding_row(f: &Value) -> FindingRow {
    let id = f["ids"][0].as_str().unwrap_or("").to_string();
    // The advisory's own reference URL; without one, a CVE's NVD entry or
    // the OSV record.
    let link = match f["reference"].as_str() {
        Some(url) => url.to_string(),
        None if id.starts_with("CVE-") => format!("https://nvd.nist.gov/vuln/detail/{id}"),
        None => format!("https://osv.dev/vulnerability/{id}"),
    };
    FindingRow {
        link,
        severity: s(&f["severity"]).to_lowercase(),
        source: s(&f["severity_source"]),
        vector: s(&f["cvss_vector"]),
        package: s(&f["package"]),
        version: s(&f["version"]),
        fixed: match (f["fixed_version"].as_str(), f["distro_status"].as_str()) {
            (Some(v), _) => v.to_string(),
            (None, Some(status)) => format!("no fix: {status}"),
            (None, None) => String::new(),
        },
        path: s(&f["path"]),
        id,
    }
}

fn severity_rank(s: &str) -> usize {
    view::SEVERITIES
        .iter()
        .position(|x| *x == s)
        .unwrap_or(view::SEVERITIES.len())
}

pub async fn image(who: SignedIn, Query(p): Query<ImageQuery>) -> Page {
    let may = caller_may(&who, &p.repository).await?;
    let refs = who
        .get(&format!(
            "/api/v1/repositories/{}/referrers/{}",
            enc(&p.repository),
            enc(&p.digest)
        ))
        .await?;
    let mut referrers: Vec<ReferrerRow> = view::items(&refs["referrers"])
        .map(|r| ReferrerRow {
            kind: referrer_kind(r["artifact_type"].as_str().unwrap_or("")),
            short: view::short(r["digest"].as_str().unwrap_or("")),
            digest: s(&r["digest"]),
            size: view::size(r["size"].as_i64().unwrap_or(0)),
        })
        .collect();
    if let Some(t) = refs["signature_tag"].as_object() {
        referrers.push(ReferrerRow {
            kind: format!("signature (cosign tag {})", s(&t["tag"])),
            short: view::short(t["digest"].as_str().unwrap_or("")),
            digest: s(&t["digest"]),
            size: String::new(),
        });
    }
    let q = format!("?repository={}", enc(&p.repository));
    let scan_api = format!("/api/v1/scans/{}", enc(&p.digest));
    let scan = who.get(&format!("{scan_api}{q}")).await?;
    let status = s(&scan["status"]);
    let counts = scan["summary"].clone();
    let record_shield = |r: &Value| {
        let status = s(&r["status"]);
        if status == "not_scanned" {
            view::shield(&Value::Null)
        } else {
            view::shield(
                &json!({"status": status, "matched": !r["database_generation"].is_null(), "counts": r["summary"]}),
            )
        }
    };
    let platforms: Vec<(String, String, Shield)> = view::items(&scan["manifests"])
        .map(|m| (s(&m["platform"]), s(&m["digest"]), record_shield(m)))
        .collect();
    let mut layers = Vec::new();
    let mut components = Vec::new();
    let mut ecosystems = Vec::new();
    let mut warnings = Vec::new();
    if status == "done" {
        let l = who.get(&format!("{scan_api}/layers{q}")).await?;
        let v = who.get(&format!("{scan_api}/vulnerabilities{q}")).await?;
        let c = who.get(&format!("{scan_api}/components{q}")).await?;
        let findings: Vec<&Value> = view::items(&v["vulnerabilities"]).collect();
        for (i, layer) in view::items(&l["layers"]).enumerate() {
            let digest = s(&layer["digest"]);
            let mut mine: Vec<FindingRow> = findings
                .iter()
                .filter(|f| f["layer"] == layer["digest"])
                .map(|f| finding_row(f))
                .collect();
            mine.sort_by_key(|f| severity_rank(&f.severity));
            layers.push(LayerRow {
                index: i + 1,
                short: view::short(&digest),
                size: layer["size"].as_i64().map(view::size).unwrap_or_default(),
                created_by: s(&layer["created_by"]),
                components: layer["components"].as_i64().unwrap_or(0),
                findings: mine,
                digest,
            });
        }
        for comp in view::items(&c["components"]) {
            let eco = s(&comp["ecosystem"]);
            if !ecosystems.contains(&eco) {
                ecosystems.push(eco.clone());
            }
            let row = |finding| ComponentRow {
                name: s(&comp["name"]),
                version: s(&comp["version"]),
                ecosystem: eco.clone(),
                license: s(&comp["license"]),
                path: s(&comp["path"]),
                layer: view::short(comp["layer"].as_str().unwrap_or("")),
                finding,
            };
            let mine: Vec<&&Value> = findings
                .iter()
                .filter(|f| f["purl"] == comp["purl"] && f["path"] == comp["path"])
                .collect();
            if mine.is_empty() {
                components.push(row(None));
            } else {
                components.extend(mine.into_iter().map(|f| row(Some(finding_row(f)))));
            }
        }
        warnings = view::items(&c["warnings"]).map(s).collect();
        ecosystems.sort();
        components.retain(|r| {
            (p.ecosystem.is_empty() || r.ecosystem == p.ecosystem)
                && (p.severity.is_empty() || r.finding.as_ref().is_some_and(|f| f.severity == p.severity))
        });
        match p.sort.as_str() {
            "name" => components.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version))),
            "layer" => components.sort_by(|a, b| a.layer.cmp(&b.layer).then(a.name.cmp(&b.name))),
            _ => components.sort_by_key(|r| {
                (
                    r.finding.as_ref().map_or(usize::MAX, |f| severity_rank(&f.severity)),
                    r.name.clone(),
                )
            }),
        }
    }
    render(ImagePage {
        chrome: chrome(&who, p.msg),
        shield: record_shield(&scan),
        bars: if status == "done" {
            view::severity_bars(&counts, 400)
        } else {
            Vec::new()
        },
        tab: p.tab.unwrap_or_else(|| "layers".into()),
        status,
        error: s(&scan["error"]),
        repository: p.repository,
        digest: p.digest,
        tag: p.tag.unwrap_or_default(),
        layers,
        components,
        ecosystems,
        severity: p.severity,
        ecosystem: p.ecosystem,
        sort: p.sort,
        warnings,
        severities: &view::SEVERITIES,
        may_scan: may["push"] == true,
        referrers,
        platforms,
    })
}

#[derive(Deserialize)]
pub struct ImageForm {
    csrf: String,
    repository: String,
    digest: String,
}

pub async fn image_scan(who: SignedIn, Form(f): Form<ImageForm>) -> Page {
    who.check_csrf(&f.csrf)?;
    let path = format!("/api/v1/scans/{}?repository={}", enc(&f.digest), enc(&f.repository));
    who.api(Method::POST, &path, Value::Null).await?;
    let to = format!("/ui/image?repository={}&digest={}", enc(&f.repository), enc(&f.digest));
    Ok(back(to, "scan queued"))
}

#[derive(Deserialize)]
pub struct SbomQuery {
    repository: String,
    digest: String,
    format: String,
}

pub async fn image_sbom(who: SignedIn, Query(q): Query<SbomQuery>) -> Page {
    let path = format!(
        "/api/v1/scans/{}/sbom?repository={}&format={}",
        enc(&q.digest),
        enc(&q.repository),
        enc(&q.format)
    );
    let answer = who.download(&path).await?;
    // The API names the file (repository and digest).
    let disposition = answer.content_disposition.unwrap_or_else(|| "attachment".into());
    Ok((
        [
            (
                "content-type",
                answer.content_type.unwrap_or_else(|| "application/json".into()),
            ),
            ("content-disposition", disposition),
        ],
        answer.bytes,
    )
        .into_response())
}

// ---- promotion policies ---------------------------------------------------

#[derive(Deserialize)]
pub struct PoliciesQuery {
    repository: String,
    msg: Option<String>,
}

pub struct PolicyView {
    id: String,
    target: String,
    tag_template: String,
    enabled: bool,
    sign_as: String,
    copy_referrers: bool,
    rules: Vec<String>,
    evaluations: Vec<EvaluationRow>,
    form: PolicyFormView,
}

pub struct EvaluationRow {
    at: String,
    tag: String,
    outcome: String,
    target_tag: String,
}

#[derive(Template)]
#[template(path = "policies.html")]
struct PoliciesPage {
    chrome: Chrome,
    repository: String,
    policies: Vec<PolicyView>,
    may_admin: bool,
    new_form: PolicyFormView,
}

const FIELDS: &[&str] = &[
    "tag",
    "package_name",
    "license_name",
    "vulnerability_all",
    "vulnerability_critical",
    "vulnerability_high",
    "vulnerability_medium",
    "vulnerability_low",
    "vulnerability_unknown",
];
const OPERATORS: &[&str] = &[
    "eq",
    "neq",
    "starts_with",
    "ends_with",
    "contains",
    "one_of",
    "none_of",
    "matches",
    "regex",
    "lte",
    "lt",
    "gte",
];

fn rule_text(r: &Value) -> String {
    let values: Vec<String> = view::items(&r["values"]).map(s).collect();
    let version = r["version"]
        .as_str()
        .map(|v| format!(" (version {v})"))
        .unwrap_or_default();
    format!(
        "{} {} {}{version}",
        s(&r["field"]),
        s(&r["operator"]),
        values.join(", ")
    )
}

pub async fn policies(who: SignedIn, Query(p): Query<PoliciesQuery>) -> Page {
    let may = caller_may(&who, &p.repository).await?;
    let api = format!("/api/v1/repositories/{}/policies", enc(&p.repository));
    let list = who.get(&api).await?;
    let mut policies = Vec::new();
    for pol in view::items(&list) {
        let id = s(&pol["id"]);
        let ev = who.get(&format!("{api}/{}/evaluations?limit=10", enc(&id))).await?;
        policies.push(PolicyView {
            target: s(&pol["target"]),
            tag_template: s(&pol["tag_template"]),
            enabled: pol["enabled"] != false,
            sign_as: s(&pol["sign_as"]),
            copy_referrers: pol["copy_referrers"] != false,
            rules: view::items(&pol["rules"]).map(rule_text).collect(),
            form: PolicyFormView::of(pol),
            // The evaluations endpoint answers a bare list.
            evaluations: view::items(&ev)
                .map(|e| EvaluationRow {
                    at: view::time_of(&e["at"]),
                    tag: s(&e["tag"]),
                    outcome: s(&e["outcome"]),
                    target_tag: s(&e["target_tag"]),
                })
                .collect(),
            id,
        });
    }
    render(PoliciesPage {
        chrome: chrome(&who, p.msg),
        repository: p.repository,
        policies,
        may_admin: may["admin"] == true,
        new_form: PolicyFormView::new_policy(),
    })
}

/// Rule rows a policy form offers beyond a policy's own rules.
const SPARE_RULE_ROWS: usize = 2;
/// Rule rows a posted form is read for.
const MAX_RULE_ROWS: usize = 32;

/// A policy form's contents: empty for a new policy, a policy's own
/// values (and a few spare rule rows) for editing it.
pub struct PolicyFormView {
    /// Empty for a new policy.
    id: String,
    target: String,
    tag_template: String,
    sign_as: String,
    enabled: bool,
    copy_referrers: bool,
    rules: Vec<RuleRow>,
}

/// One rule row of a policy form, its choices marked.
pub struct RuleRow {
    i: usize,
    fields: Vec<(&'static str, bool)>,
    operators: Vec<(&'static str, bool)>,
    values: String,
}

impl RuleRow {
    fn new(i: usize, field: &str, operator: &str, values: String) -> RuleRow {
        RuleRow {
            i,
            fields: FIELDS.iter().map(|f| (*f, *f == field)).collect(),
            operators: OPERATORS.iter().map(|o| (*o, *o == operator)).collect(),
            values,
        }
    }
}

impl PolicyFormView {
    fn new_policy() -> PolicyFormView {
        PolicyFormView {
            id: String::new(),
            target: String::new(),
            tag_template: "%n".into(),
            sign_as: String::new(),
            enabled: true,
            copy_referrers: true,
            rules: (1..=3).map(|i| RuleRow::new(i, "", "", String::new())).collect(),
        }
    }

    fn of(policy: &Value) -> PolicyFormView {
        let mut rules: Vec<RuleRow> = view::items(&policy["rules"])
            .enumerate()
            .map(|(i, r)| {
                let values: Vec<String> = view::items(&r["values"]).map(s).collect();
                RuleRow::new(i + 1, &s(&r["field"]), &s(&r["operator"]), values.join(", "))
            })
            .collect();
        let n = rules.len();
        rules.extend((n + 1..=n + SPARE_RULE_ROWS).map(|i| RuleRow::new(i, "", "", String::new())));
        PolicyFormView {
            id: s(&policy["id"]),
            target: s(&policy["target"]),
            tag_template: s(&policy["tag_template"]),
            sign_as: s(&policy["sign_as"]),
            enabled: policy["enabled"] != false,
            copy_referrers: policy["copy_referrers"] != false,
            rules,
        }
    }
}

/// A rule row's values: comma-separated, trimmed.
fn values(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// The policy a posted form describes (`fieldN`, `operatorN`, `valuesN`
/// rows; rows without a field are left out).
fn policy_of_form(f: &HashMap<String, String>) -> Value {
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let rules: Vec<Value> = (1..=MAX_RULE_ROWS)
        .filter(|i| !get(&format!("field{i}")).is_empty())
        .map(|i| {
            json!({"field": get(&format!("field{i}")), "operator": get(&format!("operator{i}")),
                   "values": values(&get(&format!("values{i}")))})
        })
        .collect();
    let mut policy = json!({
        "target": get("target"), "tag_template": get("tag_template"), "rules": rules,
        "enabled": !f.contains_key("disabled"), "copy_referrers": !f.contains_key("no_referrers"),
    });
    if !get("sign_as").is_empty() {
        policy["sign_as"] = json!(get("sign_as"));
    }
    policy
}

/// `POST /ui/policies`: creates a policy, or with `id` replaces that one.
pub async fn policy_save(who: SignedIn, Form(f): Form<HashMap<String, String>>) -> Page {
    who.check_csrf(f.get("csrf").map(String::as_str).unwrap_or(""))?;
    let repository = f.get("repository").cloned().unwrap_or_default();
    let id = f.get("id").cloned().unwrap_or_default();
    let api = format!("/api/v1/repositories/{}/policies", enc(&repository));
    let (method, path) = if id.is_empty() {
        (Method::POST, api)
    } else {
        (Method::PUT, format!("{api}/{}", enc(&id)))
    };
    let to = format!("/ui/policies?repository={}", enc(&repository));
    match who.api(method, &path, policy_of_form(&f)).await {
        Ok(saved) => Ok(back(to, &format!("policy {} saved", s(&saved["id"])))),
        // A policy the API refuses is a message on the form's page.
        Err(UiError::Api { status, message }) if matches!(status.as_u16(), 400 | 409 | 422) => Ok(back(to, &message)),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
pub struct PolicyAction {
    csrf: String,
    repository: String,
    id: String,
    #[serde(default)]
    tag: String,
}

pub struct RuleOutcome {
    rule: String,
    passed: bool,
    facts: String,
}

pub struct ImageOutcome {
    digest: String,
    passed: bool,
    rules: Vec<RuleOutcome>,
}

#[derive(Template)]
#[template(path = "dry_run.html")]
struct DryRunPage {
    chrome: Chrome,
    repository: String,
    id: String,
    tag: String,
    outcome: String,
    target_tag: String,
    reason: String,
    images: Vec<ImageOutcome>,
}

pub async fn policy_dry_run(who: SignedIn, Form(f): Form<PolicyAction>) -> Page {
    who.check_csrf(&f.csrf)?;
    let api = format!(
        "/api/v1/repositories/{}/policies/{}/dry-run",
        enc(&f.repository),
        enc(&f.id)
    );
    let e = who.api(Method::POST, &api, json!({"tag": f.tag})).await?;
    let detail = &e["detail"];
    let images = view::items(&detail["images"])
        .map(|i| ImageOutcome {
            digest: s(&i["digest"]),
            passed: i["passed"] == true,
            rules: view::items(&i["rules"])
                .map(|r| RuleOutcome {
                    rule: rule_text(&r["rule"]),
                    passed: r["passed"] == true,
                    facts: s(&r["facts"]),
                })
                .collect(),
        })
        .collect();
    let reason = [&detail["reason"], &detail["error"]]
        .iter()
        .map(|v| s(v))
        .find(|v| !v.is_empty())
        .unwrap_or_default();
    render(DryRunPage {
        chrome: chrome(&who, None),
        repository: f.repository,
        id: f.id,
        tag: f.tag,
        outcome: s(&e["outcome"]),
        target_tag: s(&e["target_tag"]),
        reason,
        images,
    })
}

pub async fn policy_apply(who: SignedIn, Form(f): Form<PolicyAction>) -> Page {
    who.check_csrf(&f.csrf)?;
    let api = format!(
        "/api/v1/repositories/{}/policies/{}/apply",
        enc(&f.repository),
        enc(&f.id)
    );
    let done = who.api(Method::POST, &api, Value::Null).await?;
    let n = done["evaluations"].as_array().map_or(0, Vec::len);
    let promoted = view::items(&done["evaluations"])
        .filter(|e| e["outcome"] == "promoted")
        .count();
    let to = format!("/ui/policies?repository={}", enc(&f.repository));
    Ok(back(to, &format!("applied to {n} tags: {promoted} promoted")))
}

pub async fn policy_delete(who: SignedIn, Form(f): Form<PolicyAction>) -> Page {
    who.check_csrf(&f.csrf)?;
    let api = format!("/api/v1/repositories/{}/policies/{}", enc(&f.repository), enc(&f.id));
    who.api(Method::DELETE, &api, Value::Null).await?;
    let to = format!("/ui/policies?repository={}", enc(&f.repository));
    Ok(back(to, &format!("policy {} deleted", f.id)))
}

// ---- vulnerability database -----------------------------------------------

#[derive(Deserialize)]
pub struct MsgQuery {
    msg: Option<String>,
}

pub struct SourceRow {
    name: String,
    records: i64,
    rejected: i64,
    imported_at: String,
}

/// A source the database is updated from, as the administration page shows it.
pub struct UpdateRow {
    url: String,
    plain_http: bool,
    records: String,
    last_success: String,
    age: String,
    last_error: String,
}

/// Seconds as `3d 4h`; empty for none.
fn age_of(v: &Value) -> String {
    v.as_u64()
        .map(|s| portcullis_policy::age_text(std::time::Duration::from_secs(s)))
        .unwrap_or_default()
}

pub struct GcRow {
    at: String,
    result: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "vulndb.html")]
struct VulnDbPage {
    chrome: Chrome,
    generation: String,
    imported_at: String,
    records: i64,
    loaded: String,
    sources: Vec<SourceRow>,
    /// When the database was last known current, and how long ago.
    fresh_at: String,
    age: String,
    updates: Vec<UpdateRow>,
    /// `api` or `configuration`: where the update sources are set.
    updates_from: String,
    /// The sources in force, one a line, for the form that sets them.
    source_list: String,
    interval: String,
    /// Scans per status: the scanner's queue.
    queue: Vec<(String, i64)>,
    gc_runs: Vec<GcRow>,
}

pub async fn vulndb(who: SignedIn, Query(q): Query<MsgQuery>) -> Page {
    let v = who.get("/api/v1/vulndb").await?;
    let st = &v["status"];
    let scanner = who.get("/api/v1/scanner").await?;
    let queue = ["queued", "scanning", "done", "failed"]
        .iter()
        .map(|k| (k.to_string(), scanner["scans"][k].as_i64().unwrap_or(0)))
        .collect();
    let week_ago = portcullis_meta::now_ms() - 7 * 86_400_000;
    let gc = who
        .get(&format!("/api/v1/audit?action=gc.run&since={week_ago}&limit=50"))
        .await?;
    let gc_runs = view::items(&gc["records"])
        .rev()
        .map(|r| GcRow {
            at: view::time_of(&r["at"]),
            result: s(&r["result"]),
            detail: s(&r["detail"]),
        })
        .collect();
    render(VulnDbPage {
        queue,
        gc_runs,
        chrome: chrome(&who, q.msg),
        generation: s(&st["generation"]),
        imported_at: s(&st["imported_at"]),
        records: st["records"].as_i64().unwrap_or(0),
        loaded: s(&st["loaded_generation"]),
        fresh_at: s(&st["updates"]["fresh_at"]),
        age: age_of(&st["updates"]["database_age_seconds"]),
        updates_from: s(&st["updates"]["from"]),
        source_list: view::items(&st["updates"]["sources"])
            .map(|u| s(&u["url"]))
            .collect::<Vec<_>>()
            .join("\n"),
        interval: age_of(&st["updates"]["interval_seconds"]),
        updates: view::items(&st["updates"]["sources"])
            .map(|u| UpdateRow {
                url: s(&u["url"]),
                plain_http: u["plain_http"].as_bool().unwrap_or(false),
                records: s(&u["records"]),
                last_success: s(&u["last_success"]),
                age: age_of(&u["age_seconds"]),
                last_error: [s(&u["last_error_at"]), s(&u["last_error"])]
                    .iter()
                    .filter(|x| !x.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(": "),
            })
            .collect(),
        sources: view::items(&st["sources"])
            .map(|src| SourceRow {
                name: s(&src["name"]),
                records: src["records"].as_i64().unwrap_or(0),
                rejected: src["rejected"].as_i64().unwrap_or(0),
                imported_at: s(&src["imported_at"]),
            })
            .collect(),
    })
}

/// The upload form: `csrf` first (checked before a byte of the file is
/// stored), then `replace_all`, then the file, streamed to disk.
pub async fn vulndb_upload(who: SignedIn, mut form: Multipart) -> Page {
    let bad = |e: axum::extract::multipart::MultipartError| UiError::BadRequest(format!("upload: {e}"));
    let mut csrf_ok = false;
    let mut replace_all = false;
    let mut report = None;
    while let Some(mut field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("csrf") => {
                who.check_csrf(&field.text().await.map_err(bad)?)?;
                csrf_ok = true;
            }
            Some("replace_all") => replace_all = true,
            Some("file") => {
                if !csrf_ok {
                    return Err(UiError::Csrf);
                }
                // The API decides who may import (as for `POST
                // /api/v1/vulndb`), asked before a byte is stored; the
                // file itself is streamed to disk, not through a request.
                who.get("/api/v1/vulndb").await?;
                let name = field.file_name().unwrap_or("").to_string();
                let reg = who.registry().clone();
                let mut upload = reg
                    .vulndb_upload(&name)
                    .await
                    .map_err(|e| UiError::BadRequest(e.to_string()))?;
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    upload
                        .write(&chunk)
                        .await
                        .map_err(|e| UiError::BadRequest(e.to_string()))?;
                }
                let actor = portcullis_server::access::Actor {
                    name: who.name.clone(),
                    address: who.on_behalf.address.clone(),
                    ..Default::default()
                };
                report = Some(match upload.import(&reg, &actor, replace_all).await {
                    Ok(r) => r,
                    Err(e) => return Ok(back("/ui/admin/vulndb".into(), &format!("import refused: {e}"))),
                });
            }
            _ => {}
        }
    }
    let Some(r) = report else {
        return Err(UiError::BadRequest("choose a file to import".into()));
    };
    let records: i64 = view::items(&r["sources"])
        .map(|s| s["records"].as_i64().unwrap_or(0))
        .sum();
    let rejected: i64 = view::items(&r["sources"])
        .map(|s| s["rejected_count"].as_i64().unwrap_or(0))
        .sum();
    let message = format!(
        "imported generation {}: {records} records, {rejected} rejected",
        s(&r["generation"])
    );
    Ok(back("/ui/admin/vulndb".into(), &message))
}

// ---- audit trail ----------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct AuditFilter {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    action: String,
    /// `YYYY-MM-DD` (UTC), inclusive.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    /// Newest first: the page older than this sequence number.
    before: Option<i64>,
    verify: Option<String>,
}

pub struct AuditRow {
    seq: i64,
    at: String,
    actor: String,
    /// How the actor proved who they were and from where: `password`,
    /// `token <id>`, `from <address>`.
    how: String,
    action: String,
    repository: String,
    result: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    actor: String,
    repository: String,
    action: String,
    since: String,
    until: String,
    rows: Vec<AuditRow>,
    next: Option<i64>,
    /// `None` until asked for (it reads the whole trail).
    chain: Option<String>,
}

pub async fn audit(who: SignedIn, Query(f): Query<AuditFilter>) -> Page {
    // Newest first, as people read a log.
    let mut path = format!(
        "/api/v1/audit?limit=100&before={}",
        f.before.map(|b| b.to_string()).unwrap_or_default()
    );
    for (k, v) in [
        ("actor", &f.actor),
        ("repository", &f.repository),
        ("action", &f.action),
    ] {
        if !v.is_empty() {
            path.push_str(&format!("&{k}={}", enc(v)));
        }
    }
    let day = |d: &str| view::day_ms(d).ok_or_else(|| UiError::BadRequest(format!("{d:?} is not a date (YYYY-MM-DD)")));
    if !f.since.is_empty() {
        path.push_str(&format!("&since={}", day(&f.since)?));
    }
    if !f.until.is_empty() {
        path.push_str(&format!("&until={}", day(&f.until)? + 86_400_000 - 1));
    }
    let v = who.get(&path).await?;
    let rows: Vec<AuditRow> = view::items(&v["records"])
        .map(|r| AuditRow {
            seq: r["seq"].as_i64().unwrap_or(0),
            at: view::time_of(&r["at"]),
            actor: s(&r["actor"]),
            how: [
                r["via"].as_str().map(str::to_string),
                r["token_id"].as_str().map(|t| format!("token {t}")),
                r["address"].as_str().map(|a| format!("from {a}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
            action: s(&r["action"]),
            repository: s(&r["repository"]),
            result: s(&r["result"]),
            detail: s(&r["detail"]),
        })
        .collect();
    let next = (rows.len() == 100).then(|| rows.last().map(|r| r.seq)).flatten();
    let chain = match f.verify {
        Some(_) => {
            let c = who.get("/api/v1/audit/verify").await?;
            Some(if c["intact"] == true {
                format!("intact: {} records verified", s(&c["records"]))
            } else {
                format!(
                    "BROKEN at record {}: {}",
                    s(&c["break"]["seq"]),
                    s(&c["break"]["reason"])
                )
            })
        }
        None => None,
    };
    render(AuditPage {
        chain,
        chrome: chrome(&who, None),
        actor: f.actor,
        repository: f.repository,
        action: f.action,
        since: f.since,
        until: f.until,
        rows,
        next,
    })
}
