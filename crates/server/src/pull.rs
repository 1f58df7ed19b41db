//! Pull rules at the manifest endpoint: an image manifest whose scan says
//! what the repository's (or namespace's) rule refuses is not served.
//! Only image manifests are judged: an index is served and each of its
//! images judged when pulled; blobs are always served. System
//! administrators are exempt (the scanner reads storage, not this API).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use portcullis_oci::Manifest;
use portcullis_policy::{PullRule, ScanState};

use crate::access::Caller;
use crate::cache::CachedManifest;
use crate::{Registry, RegistryError};

pub(crate) struct PullRuleCache {
    ttl: Duration,
    rules: Mutex<HashMap<String, (Instant, Option<PullRule>)>>,
}

impl PullRuleCache {
    pub(crate) fn new(ttl: Duration) -> PullRuleCache {
        PullRuleCache {
            ttl,
            rules: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets every cached rule (a repository's or namespace's changed).
    pub(crate) fn clear(&self) {
        self.rules.lock().expect("not poisoned").clear();
    }
}

fn parse(json: &str) -> Option<PullRule> {
    serde_json::from_str::<PullRule>(json).ok().filter(|r| !r.is_empty())
}

impl Registry {
    /// The rule in force for `repo`: its own and its namespace's together.
    async fn pull_rule(&self, repo: &str) -> Result<Option<PullRule>, RegistryError> {
        let cache = &self.pull_rules;
        if let Some((at, rule)) = cache.rules.lock().expect("not poisoned").get(repo) {
            if at.elapsed() < cache.ttl {
                return Ok(rule.clone());
            }
        }
        let (own, namespace) = self.meta.pull_rules(repo).await?;
        let rule = match (parse(&own), parse(&namespace)) {
            (Some(a), Some(b)) => Some(a.and(&b)),
            (a, b) => a.or(b),
        };
        let mut rules = cache.rules.lock().expect("not poisoned");
        if rules.len() > 100_000 {
            rules.clear();
        }
        rules.insert(repo.to_string(), (Instant::now(), rule.clone()));
        Ok(rule)
    }

    async fn exempt(&self, caller: &Caller) -> bool {
        match caller {
            Caller::Account(p) => p.account.admin,
            Caller::Bearer(c) => self.meta.account(&c.sub).await.ok().flatten().is_some_and(|a| a.admin),
            Caller::Anonymous => false,
        }
    }

    /// `Err(DENIED)` naming the rule and the counts when `m` must not be served.
    pub(crate) async fn check_pull_rule(
        &self,
        caller: &Caller,
        repo: &str,
        m: &CachedManifest,
    ) -> Result<(), RegistryError> {
        let Some(rule) = self.pull_rule(repo).await? else {
            return Ok(());
        };
        let is_image = Manifest::parse(&m.content, Some(&m.media_type)).is_ok_and(|m| crate::scanner::is_image(&m));
        if !is_image || self.exempt(caller).await {
            return Ok(());
        }
        let state = match self.meta.scan(&m.digest).await? {
            None => ScanState::None,
            Some(s) => match s.status.as_str() {
                "done" => ScanState::Done(s.counts.map(|n| n.max(0) as u64)),
                "failed" => ScanState::Failed(s.error.unwrap_or_default()),
                _ => ScanState::Pending,
            },
        };
        rule.judge(&state)
            .map_err(|why| RegistryError::Denied(format!("{} in {repo}: {why}", &*m.digest)))
    }
}
