//! The views users read a scan through: counts per severity, and the
//! layers view ("which layer brought the vulnerable component").

use serde::Serialize;

use crate::layer::ImageFacts;
use crate::matching::Finding;
use crate::severity::Severity;

/// Findings per severity, worst first: critical, high, medium, low, unknown.
pub fn severity_counts(findings: &[Finding]) -> [usize; 5] {
    let mut out = [0; 5];
    for f in findings {
        let i = Severity::ALL
            .iter()
            .position(|s| *s == f.severity)
            .expect("every severity is listed");
        out[i] += 1;
    }
    out
}

/// `{"critical": n, …}` for JSON replies.
pub fn counts_json(counts: [usize; 5]) -> serde_json::Value {
    Severity::ALL
        .iter()
        .zip(counts)
        .map(|(s, n)| (s.name().to_string(), serde_json::Value::from(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LayerSummary {
    pub digest: String,
    /// Components this layer introduced.
    pub components: usize,
    /// Findings in those components.
    pub vulnerabilities: usize,
    pub worst: Option<Severity>,
}

/// Each layer, bottom first, with what it brought in.
pub fn layer_view(layers: &[String], image: &ImageFacts, findings: &[Finding]) -> Vec<LayerSummary> {
    layers
        .iter()
        .map(|l| {
            let mine: Vec<&Finding> = findings.iter().filter(|f| &f.layer == l).collect();
            LayerSummary {
                digest: l.clone(),
                components: image.components.iter().filter(|c| &c.layer == l).count(),
                vulnerabilities: mine.len(),
                worst: mine.iter().map(|f| f.severity).max(),
            }
        })
        .collect()
}
