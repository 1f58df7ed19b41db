//! One schema for SQLite and PostgreSQL.
//!
//! Each migration is written once; two tokens stand for what the dialects
//! spell differently: `{text_c}` is text ordered bytewise (so tag and
//! catalog pages come back in the spec's lexical order, whatever the
//! PostgreSQL cluster's locale), `{bytes}` is a binary column.
//!
//! Foreign keys are load-bearing: they make a manifest push and a garbage
//! collection that race on the same blob fail cleanly instead of leaving a
//! manifest that points at nothing (DESIGN invariant 5), on both backends.

pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE repositories (
    name {text_c} PRIMARY KEY,
    created_at BIGINT NOT NULL
);
CREATE TABLE blobs (
    digest TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    written_at BIGINT NOT NULL
);
CREATE TABLE repo_blobs (
    repo {text_c} NOT NULL REFERENCES repositories(name),
    digest TEXT NOT NULL REFERENCES blobs(digest),
    linked_at BIGINT NOT NULL,
    PRIMARY KEY (repo, digest)
);
CREATE INDEX repo_blobs_by_digest ON repo_blobs (digest);
CREATE TABLE manifests (
    repo {text_c} NOT NULL REFERENCES repositories(name),
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    artifact_type TEXT,
    subject TEXT,
    annotations TEXT,
    size BIGINT NOT NULL,
    content {bytes} NOT NULL,
    pushed_at BIGINT NOT NULL,
    PRIMARY KEY (repo, digest)
);
CREATE INDEX manifests_by_subject ON manifests (repo, subject);
CREATE TABLE manifest_blobs (
    repo {text_c} NOT NULL,
    manifest TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (repo, manifest, digest),
    FOREIGN KEY (repo, manifest) REFERENCES manifests (repo, digest) ON DELETE CASCADE,
    FOREIGN KEY (repo, digest) REFERENCES repo_blobs (repo, digest)
);
CREATE INDEX manifest_blobs_by_blob ON manifest_blobs (repo, digest);
CREATE TABLE manifest_children (
    repo {text_c} NOT NULL,
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    PRIMARY KEY (repo, parent, child),
    FOREIGN KEY (repo, parent) REFERENCES manifests (repo, digest) ON DELETE CASCADE,
    FOREIGN KEY (repo, child) REFERENCES manifests (repo, digest)
);
CREATE INDEX manifest_children_by_child ON manifest_children (repo, child);
CREATE TABLE tags (
    repo {text_c} NOT NULL,
    name {text_c} NOT NULL,
    digest TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (repo, name),
    FOREIGN KEY (repo, digest) REFERENCES manifests (repo, digest)
);
CREATE INDEX tags_by_digest ON tags (repo, digest);
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    repo {text_c} NOT NULL,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
"#,
    // Identity, access and the audit trail. Names are the keys: accounts
    // (users, organizations, service accounts) share one namespace, as on
    // GitHub, so `acme/app` is owned by whichever account is called `acme`.
    r#"
CREATE TABLE accounts (
    name {text_c} PRIMARY KEY,
    kind TEXT NOT NULL,
    password_hash TEXT,
    admin BIGINT NOT NULL DEFAULT 0,
    owner {text_c} REFERENCES accounts(name) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE TABLE teams (
    org {text_c} NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    name {text_c} NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org, name)
);
CREATE TABLE team_members (
    org {text_c} NOT NULL,
    team {text_c} NOT NULL,
    account {text_c} NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    PRIMARY KEY (org, team, account),
    FOREIGN KEY (org, team) REFERENCES teams (org, name) ON DELETE CASCADE
);
CREATE INDEX team_members_by_account ON team_members (account);
CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    namespace {text_c} NOT NULL,
    repository {text_c},
    account {text_c} REFERENCES accounts(name) ON DELETE CASCADE,
    team_org {text_c},
    team {text_c},
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (team_org, team) REFERENCES teams (org, name) ON DELETE CASCADE,
    CHECK ((account IS NULL) <> (team IS NULL))
);
CREATE INDEX grants_by_namespace ON grants (namespace);
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    account {text_c} NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_by_account ON api_tokens (account);
ALTER TABLE repositories ADD COLUMN visibility TEXT NOT NULL DEFAULT 'private';
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    token_id TEXT,
    action TEXT NOT NULL,
    repository TEXT,
    digest TEXT,
    address TEXT,
    result TEXT NOT NULL,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_by_actor ON audit_log (actor, seq);
CREATE INDEX audit_by_repository ON audit_log (repository, seq);
CREATE INDEX audit_by_action ON audit_log (action, seq);
CREATE INDEX audit_by_time ON audit_log (at);
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')
"#,
    // 3: scanning. Layer facts are cached by layer digest (a shared base
    // layer is read once); scan results by image manifest digest, which
    // names the same content in every repository.
    r#"
ALTER TABLE repositories ADD COLUMN scan_on_push BIGINT NOT NULL DEFAULT 1;
CREATE TABLE layer_facts (
    digest TEXT PRIMARY KEY,
    facts TEXT NOT NULL,
    read_at BIGINT NOT NULL
);
CREATE TABLE scans (
    digest TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    error TEXT,
    layers TEXT,
    findings TEXT,
    db_generation BIGINT,
    critical BIGINT NOT NULL DEFAULT 0,
    high BIGINT NOT NULL DEFAULT 0,
    medium BIGINT NOT NULL DEFAULT 0,
    low BIGINT NOT NULL DEFAULT 0,
    unknown BIGINT NOT NULL DEFAULT 0,
    requested_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX scans_by_status ON scans (status);
CREATE TABLE scan_sboms (
    digest TEXT PRIMARY KEY,
    sbom {bytes} NOT NULL
)
"#,
    // 4: security fixes. Upload sessions belong to the account that opened
    // them; a scan counts its attempts (an image that kills its scanner is
    // failed, not retried forever); a password change is dated, so tokens
    // issued before it stop working; grants on a namespace need the account
    // that owns it and go with it. Namespaces that held grants without an
    // account get one (an organization without owners), so the name stays
    // taken instead of being claimable.
    r#"
ALTER TABLE uploads ADD COLUMN owner {text_c};
ALTER TABLE scans ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN password_changed_at BIGINT;
INSERT INTO accounts (name, kind, admin, created_at)
    SELECT DISTINCT g.namespace, 'org', 0, 0 FROM grants g
    WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.name = g.namespace);
CREATE TABLE grants_v4 (
    id TEXT PRIMARY KEY,
    namespace {text_c} NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    repository {text_c},
    account {text_c} REFERENCES accounts(name) ON DELETE CASCADE,
    team_org {text_c},
    team {text_c},
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (team_org, team) REFERENCES teams (org, name) ON DELETE CASCADE,
    CHECK ((account IS NULL) <> (team IS NULL))
);
INSERT INTO grants_v4 (id, namespace, repository, account, team_org, team, role, created_at)
    SELECT id, namespace, repository, account, team_org, team, role, created_at FROM grants;
DROP TABLE grants;
ALTER TABLE grants_v4 RENAME TO grants;
CREATE INDEX grants_by_namespace ON grants (namespace)
"#,
    // 5: immutable tags. Patterns are JSON lists of globs (see the policy
    // crate); a namespace's settings go with its account.
    r#"
ALTER TABLE repositories ADD COLUMN immutable_tags BIGINT NOT NULL DEFAULT 0;
ALTER TABLE repositories ADD COLUMN immutable_tag_patterns TEXT NOT NULL DEFAULT '';
CREATE TABLE namespace_settings (
    namespace {text_c} PRIMARY KEY REFERENCES accounts(name) ON DELETE CASCADE,
    immutable_tag_patterns TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL
)
"#,
    // 6: promotion policies, every evaluation of one, and where a promoted
    // tag came from.
    r#"
CREATE TABLE promotion_policies (
    id TEXT PRIMARY KEY,
    repository {text_c} NOT NULL,
    owner {text_c} NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    policy TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX promotion_policies_by_repository ON promotion_policies (repository);
CREATE TABLE promotion_evaluations (
    id TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL,
    repository {text_c} NOT NULL,
    tag {text_c},
    digest TEXT NOT NULL,
    outcome TEXT NOT NULL,
    target_tag TEXT,
    detail TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX promotion_evaluations_by_policy ON promotion_evaluations (policy_id, at);
CREATE INDEX promotion_evaluations_by_digest ON promotion_evaluations (digest, at);
CREATE TABLE promotions (
    repository {text_c} NOT NULL,
    tag {text_c} NOT NULL,
    digest TEXT NOT NULL,
    source_repository {text_c} NOT NULL,
    source_tag {text_c},
    policy_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (repository, tag)
)
"#,
    // 7: pull rules (JSON, see the policy crate), on a repository and on a
    // namespace.
    r#"
ALTER TABLE repositories ADD COLUMN pull_rule TEXT NOT NULL DEFAULT '';
ALTER TABLE namespace_settings ADD COLUMN pull_rule TEXT NOT NULL DEFAULT ''
"#,
    // 8: webhooks. Events go to the outbox in the transaction of the change
    // that caused them, numbered under one head row (so in commit order),
    // with one delivery per matching hook; attempts are kept.
    r#"
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    repository {text_c},
    namespace {text_c} REFERENCES accounts(name) ON DELETE CASCADE,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    headers TEXT NOT NULL DEFAULT '',
    enabled BIGINT NOT NULL DEFAULT 1,
    created_by {text_c} NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK ((repository IS NULL) <> (namespace IS NULL))
);
CREATE INDEX webhooks_by_repository ON webhooks (repository);
CREATE INDEX webhooks_by_namespace ON webhooks (namespace);
CREATE TABLE outbox_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL
);
INSERT INTO outbox_head (id, seq) VALUES (1, 0);
CREATE TABLE outbox (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    repository {text_c} NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    hook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_seq BIGINT NOT NULL REFERENCES outbox(seq),
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    claim TEXT,
    claimed_until BIGINT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX deliveries_due ON deliveries (status, next_at);
CREATE INDEX deliveries_by_hook ON deliveries (hook_id, event_seq);
CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms BIGINT NOT NULL,
    error TEXT,
    response TEXT,
    PRIMARY KEY (delivery_id, attempt)
)
"#,
    // 9: public keys of accounts, whose signatures teams and rules trust.
    r#"
CREATE TABLE account_keys (
    id TEXT PRIMARY KEY,
    account {text_c} NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    pem TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX account_keys_by_account ON account_keys (account)
"#,
    // 10: server-side signing keys of service accounts, sealed with the
    // key-encryption key (the meta crate never sees them in the clear).
    r#"
CREATE TABLE signing_keys (
    account {text_c} PRIMARY KEY REFERENCES accounts(name) ON DELETE CASCADE,
    key_id TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL
)
"#,
    // 11: garbage collection prunes scan results and layer facts by
    // digest alone (no repository), so it needs these lookups indexed.
    r#"
CREATE INDEX manifests_by_digest ON manifests (digest);
CREATE INDEX manifest_blobs_by_digest ON manifest_blobs (digest)
"#,
    // 12: the web UI. A tag remembers who moved it last (the tag list shows
    // it without reading the audit trail); browser sessions are rows, so a
    // logout or an expiry holds across restarts and replicas. Only a
    // session id's SHA-256 is stored.
    r#"
ALTER TABLE tags ADD COLUMN pushed_by TEXT;
CREATE TABLE ui_sessions (
    id_hash TEXT PRIMARY KEY,
    account {text_c} NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX ui_sessions_by_expiry ON ui_sessions (expires_at)
"#,
    // 13: repositories of a namespace that only promotions and signatures
    // write to (JSON list of name patterns).
    r#"
ALTER TABLE namespace_settings ADD COLUMN promotion_only TEXT NOT NULL DEFAULT ''
"#,
    // 14: tag templates take Docker Trusted Registry's variables; stored
    // templates are rewritten to mean what they meant (`Meta::migrate`
    // runs the rewrite with this version, `TEMPLATES_UPGRADED`).
    r#"
UPDATE schema_migrations SET applied_at = applied_at WHERE version < 0
"#,
    // 15: how the actor authenticated, when the action's record carries it
    // (a Basic login on the management API) instead of a `login` record.
    r#"
ALTER TABLE audit_log ADD COLUMN via TEXT
"#,
    // 16: the registry's own attestation keys (it attests its scans),
    // sealed with the key-encryption key. The newest signs; every one stays
    // published, so what an older one signed still verifies.
    r#"
CREATE TABLE registry_keys (
    id TEXT PRIMARY KEY,
    sealed TEXT NOT NULL,
    pem TEXT NOT NULL,
    created_at BIGINT NOT NULL
)
"#,
    // 17: replication from upstream registries. A registry's password is
    // sealed by the server (the meta crate never sees it in the clear); a
    // rule is claimed for a run through `running_since` (one run at a time
    // per rule, across replicas); runs keep what they copied, skipped and
    // refused (JSON lists); provenance says where an imported tag came from.
    r#"
CREATE TABLE upstream_registries (
    name {text_c} PRIMARY KEY,
    url TEXT NOT NULL,
    username TEXT,
    sealed_password TEXT,
    ca_pem TEXT,
    tls_verify BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE replication_rules (
    id TEXT PRIMARY KEY,
    name {text_c} NOT NULL UNIQUE,
    registry {text_c} NOT NULL REFERENCES upstream_registries(name),
    direction TEXT NOT NULL,
    source TEXT NOT NULL,
    tags TEXT NOT NULL,
    target TEXT NOT NULL,
    require_keys TEXT NOT NULL,
    interval_secs BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    running_since BIGINT,
    last_run_at BIGINT
);
CREATE TABLE replication_runs (
    id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL REFERENCES replication_rules(id) ON DELETE CASCADE,
    cause TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    status TEXT NOT NULL,
    copied TEXT NOT NULL,
    skipped TEXT NOT NULL,
    refused TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    error TEXT
);
CREATE INDEX replication_runs_by_rule ON replication_runs (rule_id, started_at);
CREATE TABLE replication_provenance (
    repo {text_c} NOT NULL,
    tag {text_c} NOT NULL,
    digest TEXT NOT NULL,
    registry TEXT NOT NULL,
    upstream_repository TEXT NOT NULL,
    upstream_tag TEXT NOT NULL,
    upstream_digest TEXT NOT NULL,
    verified_key TEXT,
    rule_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    replicated_at BIGINT NOT NULL,
    PRIMARY KEY (repo, tag)
)
"#,
    // 18: pull-through caches. A namespace may proxy a namespace of an
    // upstream registry (which can't be deleted while it does); each image
    // the cache stored is listed with the bytes its blobs declare and when
    // it was last pulled, for the size limit's least-recently-pulled
    // eviction. Rows go with their manifest.
    r#"
CREATE TABLE proxy_namespaces (
    namespace {text_c} PRIMARY KEY REFERENCES accounts(name) ON DELETE CASCADE,
    registry {text_c} NOT NULL REFERENCES upstream_registries(name),
    upstream_namespace TEXT NOT NULL,
    ttl_secs BIGINT NOT NULL,
    max_bytes BIGINT NOT NULL,
    public BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE proxy_images (
    repo {text_c} NOT NULL,
    digest TEXT NOT NULL,
    namespace {text_c} NOT NULL,
    bytes BIGINT NOT NULL,
    cached_at BIGINT NOT NULL,
    pulled_at BIGINT NOT NULL,
    PRIMARY KEY (repo, digest),
    FOREIGN KEY (repo, digest) REFERENCES manifests(repo, digest) ON DELETE CASCADE
);
CREATE INDEX proxy_images_by_pull ON proxy_images (namespace, pulled_at)
"#,
    // 19: push replication, signers by name, claims by run. A rule's
    // claim names the run holding it (`claimed_by`), so a run whose lease
    // ran out cannot renew or release the next run's. A rule may require
    // signatures by local accounts' and teams' keys (`require_signers`, a
    // JSON `SignedBy`). The push queue holds a row per (push rule,
    // repository, tag) to send, written in the transaction of the event
    // that wants it (`seq` is that event's; a newer event for the same tag
    // replaces it), claimed by the run that pushes it, deleted when sent.
    r#"
ALTER TABLE replication_rules ADD COLUMN require_signers TEXT NOT NULL DEFAULT '';
ALTER TABLE replication_rules ADD COLUMN claimed_by TEXT;
CREATE TABLE replication_push_queue (
    id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL REFERENCES replication_rules(id) ON DELETE CASCADE,
    repo {text_c} NOT NULL,
    tag {text_c} NOT NULL,
    digest TEXT NOT NULL,
    seq BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    claim TEXT,
    created_at BIGINT NOT NULL,
    last_error TEXT,
    UNIQUE (rule_id, repo, tag)
);
CREATE INDEX replication_push_queue_due ON replication_push_queue (next_at)
"#,
];

/// The migration whose version rewrites stored tag templates
/// (`%d` → `%Y%m%d`, `%t` → `%H%M%S`).
pub(crate) const TEMPLATES_UPGRADED: usize = 14;
