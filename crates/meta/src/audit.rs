//! The audit trail: one row per event, hash-chained. Each record's hash
//! covers its fields and the previous record's hash, so editing or deleting
//! history breaks the chain at that record. A one-row head holds the last
//! sequence number and hash; updating it first serialises writers on both
//! backends (a row lock on PostgreSQL, the write lock on SQLite), so the
//! chain never forks.
//!
//! With an audit key (kept apart from the database) each hash is an
//! HMAC, so someone who can write the database but lacks the key cannot
//! recompute the chain after editing it. Truncating the tail needs no key:
//! anchors (a record's position and hash, stored elsewhere) catch that.

use sqlx::{Any, Row, Transaction};

use crate::{now_ms, Meta, Result};

/// Who did what, to which repository and digest, from where, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEvent {
    pub actor: String,
    pub token_id: Option<String>,
    pub action: String,
    pub repository: Option<String>,
    pub digest: Option<String>,
    pub address: Option<String>,
    /// `ok`, `denied` or `failed`.
    pub result: String,
    pub detail: Option<String>,
    /// How the actor proved who they are, where no record of its own says
    /// so: `password` for a Basic login carried on the action's record
    /// instead of a `login` record per request.
    pub via: Option<String>,
    /// Webhook events the same change causes: written to the outbox in the
    /// same transaction as this record. Not part of the record's hash.
    pub outbox: Vec<crate::outbox::OutboxEvent>,
}

impl AuditEvent {
    /// A successful `action` by `actor`.
    pub fn ok(actor: &str, action: &str) -> AuditEvent {
        AuditEvent {
            actor: actor.to_string(),
            action: action.to_string(),
            result: "ok".into(),
            ..AuditEvent::default()
        }
    }
    pub fn repository(mut self, repo: &str) -> Self {
        self.repository = Some(repo.to_string());
        self
    }
    pub fn digest(mut self, digest: &str) -> Self {
        self.digest = Some(digest.to_string());
        self
    }
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    pub fn via(mut self, via: Option<&str>) -> Self {
        self.via = via.map(str::to_string);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: i64,
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// Filters for reading the trail; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub repository: Option<String>,
    pub action: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Records with a sequence number greater than this (paging).
    pub after_seq: Option<i64>,
    /// Newest first: records with a sequence number less than this, in
    /// descending order (paging back; `i64::MAX` for the newest page).
    /// Takes precedence over `after_seq`.
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// Where `audit verify` found the chain broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: i64,
    pub reason: String,
}

/// How record hashes are made: SHA-256 (no key), or HMAC-SHA-256 under the audit key.
#[derive(Clone)]
pub(crate) enum ChainHasher {
    Plain,
    Keyed(ring::hmac::Key),
}

impl ChainHasher {
    /// The hash of a record: over a JSON array of its fields in a fixed
    /// order, so no field boundary is ambiguous.
    pub(crate) fn hash(&self, prev_hash: &str, seq: i64, at: i64, e: &AuditEvent) -> String {
        let bytes = hash_input(prev_hash, seq, at, e);
        match self {
            ChainHasher::Plain => portcullis_oci::Digest::sha256_of(&bytes).hex().to_string(),
            ChainHasher::Keyed(key) => hex::encode(ring::hmac::sign(key, &bytes).as_ref()),
        }
    }
}

/// The bytes a record's hash covers: a JSON array of its fields in a fixed
/// order. A tuple serialises as the same array without building a tree.
/// `via` came later: it is appended only when present, so records written
/// before it keep their hashes (and the arrays' lengths differ).
pub(crate) fn hash_input(prev_hash: &str, seq: i64, at: i64, e: &AuditEvent) -> Vec<u8> {
    let fields = (
        prev_hash,
        seq,
        at,
        &e.actor,
        &e.token_id,
        &e.action,
        &e.repository,
        &e.digest,
        &e.address,
        &e.result,
        &e.detail,
    );
    match &e.via {
        None => serde_json::to_vec(&fields),
        Some(via) => {
            let (a, b, c, d, e2, f, g, h, i, j, k) = fields;
            serde_json::to_vec(&(a, b, c, d, e2, f, g, h, i, j, k, via))
        }
    }
    .expect("plain JSON values serialise")
}

/// A record's position and hash, printed for the operator to keep
/// elsewhere: the log must still hold exactly this record later.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditAnchor {
    pub seq: i64,
    pub hash: String,
    /// When the record was written (ms since the epoch).
    pub at: i64,
}

/// Appends `event` inside `tx`; commits with the change it records.
pub(crate) async fn append(tx: &mut Transaction<'_, Any>, event: &AuditEvent, chain: &ChainHasher) -> Result<()> {
    append_many(tx, std::slice::from_ref(event), chain).await
}

/// Appends `events` inside `tx` in order: one head update for all of them
/// and multi-row inserts, so a batch of pull records costs a few
/// statements instead of three per record.
pub(crate) async fn append_many(
    tx: &mut Transaction<'_, Any>,
    events: &[AuditEvent],
    chain: &ChainHasher,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let head = sqlx::query("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
        .bind(events.len() as i64)
        .fetch_one(&mut **tx)
        .await?;
    let last: i64 = head.try_get(0)?;
    let mut prev: String = head.try_get(1)?;
    let at = now_ms();
    let mut rows = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let seq = last - events.len() as i64 + 1 + i as i64;
        let hash = chain.hash(&prev, seq, at, e);
        rows.push((seq, e, std::mem::replace(&mut prev, hash.clone()), hash));
    }
    // SQLite looks a named parameter (`$N`) up by a linear walk, and sqlx
    // asks for each one's name: quadratic in a statement's parameters. Its
    // anonymous `?` are bound in order without a lookup.
    let anonymous = tx.backend_name() == "SQLite";
    // 13 parameters a row, far below every backend's limit. PostgreSQL
    // pays a round trip per statement, so it takes bigger ones (measured
    // with bench/pulls.sh's request: p99 7.8-11 ms at 40 rows, 6.0-6.6 ms at 250);
    // SQLite's in-process statements do best small.
    let rows_per_statement = if anonymous { 40 } else { 250 };
    for chunk in rows.chunks(rows_per_statement) {
        let values: Vec<String> = (0..chunk.len())
            .map(|r| {
                let p: Vec<String> = (1..=13)
                    .map(|c| {
                        if anonymous {
                            "?".to_string()
                        } else {
                            format!("${}", r * 13 + c)
                        }
                    })
                    .collect();
                format!("({})", p.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO audit_log (seq, at, actor, token_id, action, repository, digest, address, result, detail, prev_hash, hash, via) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (seq, e, prev_hash, hash) in chunk {
            q = q
                .bind(*seq)
                .bind(at)
                .bind(&e.actor)
                .bind(e.token_id.as_deref())
                .bind(&e.action)
                .bind(e.repository.as_deref())
                .bind(e.digest.as_deref())
                .bind(e.address.as_deref())
                .bind(&e.result)
                .bind(e.detail.as_deref())
                .bind(prev_hash)
                .bind(hash)
                .bind(e.via.as_deref());
        }
        q.execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev)
        .execute(&mut **tx)
        .await?;
    for e in events.iter().filter(|e| !e.outbox.is_empty()) {
        crate::outbox::append_events(tx, &e.outbox, None).await?;
    }
    Ok(())
}

pub(crate) const COLUMNS: &str =
    "seq, at, actor, token_id, action, repository, digest, address, result, detail, prev_hash, hash, via";

pub(crate) fn record(r: &sqlx::any::AnyRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.try_get(0)?,
        at: r.try_get(1)?,
        event: AuditEvent {
            actor: r.try_get(2)?,
            token_id: r.try_get(3)?,
            action: r.try_get(4)?,
            repository: r.try_get(5)?,
            digest: r.try_get(6)?,
            address: r.try_get(7)?,
            result: r.try_get(8)?,
            detail: r.try_get(9)?,
            via: r.try_get(12)?,
            outbox: Vec::new(),
        },
        prev_hash: r.try_get(10)?,
        hash: r.try_get(11)?,
    })
}

impl Meta {
    /// Records events that change nothing else (pulls, failed logins,
    /// denials), several in one transaction.
    pub async fn audit(&self, events: &[AuditEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        append_many(&mut tx, events, &self.chain).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records matching `q`, in order. Only the filters given enter the
    /// query, so each page is an index range (by `seq`, or by actor,
    /// repository or action and `seq`), not a scan of the whole trail.
    pub async fn audit_records(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let (first, order, bound) = match q.before_seq {
            Some(b) => ("seq < $1", "DESC", b),
            None => ("seq > $1", "", q.after_seq.unwrap_or(0)),
        };
        let mut conditions = vec![first.to_string()];
        let mut texts = Vec::new();
        for (column, value) in [
            ("actor", &q.actor),
            ("repository", &q.repository),
            ("action", &q.action),
        ] {
            if let Some(v) = value {
                texts.push(v.as_str());
                conditions.push(format!("{column} = ${}", texts.len() + 1));
            }
        }
        let mut times = Vec::new();
        for (op, value) in [(">=", q.since_ms), ("<=", q.until_ms)] {
            if let Some(v) = value {
                times.push(v);
                conditions.push(format!("at {op} ${}", 1 + texts.len() + times.len()));
            }
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log WHERE {} ORDER BY seq {order} LIMIT ${}",
            conditions.join(" AND "),
            2 + texts.len() + times.len()
        );
        let mut query = sqlx::query(&sql).bind(bound);
        for t in texts {
            query = query.bind(t);
        }
        for t in times {
            query = query.bind(t);
        }
        let rows = query.bind(q.limit).fetch_all(&self.pool).await?;
        rows.iter().map(record).collect()
    }

    /// Walks the whole chain in order; the first record whose sequence,
    /// link or hash is wrong, or the head if records after the last one are
    /// missing. `Ok(None)`: intact. Also returns how many records were read.
    pub async fn verify_audit(&self) -> Result<(i64, Option<ChainBreak>)> {
        self.walk_audit(&self.chain, |_| Ok(())).await
    }

    /// As `verify_audit`, and the chain must still hold `anchor`'s record
    /// exactly (the log was neither rewritten nor cut back before it).
    pub async fn verify_audit_anchor(&self, anchor: &AuditAnchor) -> Result<(i64, Option<ChainBreak>)> {
        let mut seen = false;
        let (read, broken) = self
            .walk_audit(&self.chain, |rec| {
                if rec.seq == anchor.seq {
                    seen = true;
                    if rec.hash != anchor.hash || rec.at != anchor.at {
                        return Err(format!("record {} is not the anchored one (its hash differs)", rec.seq));
                    }
                }
                Ok(())
            })
            .await?;
        if broken.is_some() {
            return Ok((read, broken));
        }
        if !seen && anchor.seq > 0 {
            let reason = format!("the log ends at record {read}: anchored record {} is gone", anchor.seq);
            return Ok((
                read,
                Some(ChainBreak {
                    seq: anchor.seq,
                    reason,
                }),
            ));
        }
        Ok((read, None))
    }

    /// The last record's anchor (`seq` 0 for an empty log).
    pub async fn audit_anchor(&self) -> Result<AuditAnchor> {
        let row = sqlx::query("SELECT seq, hash, at FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => AuditAnchor {
                seq: r.try_get(0)?,
                hash: r.try_get(1)?,
                at: r.try_get(2)?,
            },
            None => AuditAnchor {
                seq: 0,
                hash: "0".repeat(64),
                at: 0,
            },
        })
    }

    /// Whether the trail's first record verifies under the current key
    /// (`None`: the trail has no first record). A process holding a key
    /// that never wrote this trail must not append to it: its records
    /// would verify under neither key.
    pub async fn audit_key_fits(&self) -> Result<Option<bool>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log WHERE seq = 1"))
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let first = record(&row)?;
        Ok(Some(
            self.chain.hash(&first.prev_hash, first.seq, first.at, &first.event) == first.hash,
        ))
    }

    /// Hashes records with `key` from now on.
    pub fn set_audit_key(&mut self, key: &[u8; 32]) {
        self.chain = ChainHasher::Keyed(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key));
    }

    /// Moves an unkeyed chain under `key`, once, when the key is made: the
    /// chain must verify as it is, then every record is re-hashed with the
    /// key in one transaction. `Err` names the break of a chain already
    /// broken (it is left as it is).
    pub async fn key_audit_trail(&self, key: &[u8; 32]) -> Result<std::result::Result<i64, ChainBreak>> {
        if let (_, Some(b)) = self.walk_audit(&ChainHasher::Plain, |_| Ok(())).await? {
            return Ok(Err(b));
        }
        let keyed = ChainHasher::Keyed(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key));
        let mut tx = self.pool.begin().await?;
        // Write first: takes the writers' lock before reading the chain.
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let mut prev = "0".repeat(64);
        let mut after = 0;
        let mut count = 0;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 1000"
            ))
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let rec = record(r)?;
                let hash = keyed.hash(&prev, rec.seq, rec.at, &rec.event);
                sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE seq = $3")
                    .bind(&prev)
                    .bind(&hash)
                    .bind(rec.seq)
                    .execute(&mut *tx)
                    .await?;
                prev = hash;
                after = rec.seq;
                count += 1;
            }
        }
        if count > 0 {
            sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
                .bind(&prev)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Ok(count))
    }

    /// Walks the chain under `chain`, calling `check` on each intact record.
    async fn walk_audit(
        &self,
        chain: &ChainHasher,
        mut check: impl FnMut(&AuditRecord) -> std::result::Result<(), String>,
    ) -> Result<(i64, Option<ChainBreak>)> {
        let mut expect_seq = 1;
        let mut prev = "0".repeat(64);
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT 1000"
            ))
            .bind(expect_seq)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let rec = record(r)?;
                let broken = |reason: String| Ok((expect_seq - 1, Some(ChainBreak { seq: rec.seq, reason })));
                if rec.seq != expect_seq {
                    return Ok((
                        expect_seq - 1,
                        Some(ChainBreak {
                            seq: expect_seq,
                            reason: format!("record {expect_seq} is missing (next is {})", rec.seq),
                        }),
                    ));
                }
                if rec.prev_hash != prev {
                    return broken(format!("record {} does not link to record {}", rec.seq, rec.seq - 1));
                }
                if chain.hash(&rec.prev_hash, rec.seq, rec.at, &rec.event) != rec.hash {
                    return broken(format!(
                        "record {} was altered: its hash does not match its content{}",
                        rec.seq,
                        match chain {
                            ChainHasher::Keyed(_) => " under the audit key",
                            ChainHasher::Plain => "",
                        }
                    ));
                }
                if let Err(reason) = check(&rec) {
                    return broken(reason);
                }
                prev = rec.hash;
                expect_seq += 1;
            }
        }
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let (head_seq, head_hash): (i64, String) = (head.try_get(0)?, head.try_get(1)?);
        let read = expect_seq - 1;
        if head_seq != read || (read > 0 && head_hash != prev) {
            return Ok((
                read,
                Some(ChainBreak {
                    seq: read + 1,
                    reason: format!("the chain ends at record {read} but {head_seq} were written"),
                }),
            ));
        }
        Ok((read, None))
    }
}
