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

pub const MIGRATIONS: &[&str] = &[r#"
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
"#];
