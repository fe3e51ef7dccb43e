//! The audit log: append-only and hash-chained. Each event's hash covers its fields and the hash
//! of the event before it, so an edited or deleted event breaks the chain at that point. The
//! links are keyed (HMAC-SHA256 under a key kept outside the database, [`Db::with_audit_key`]):
//! whoever can write the database but not read the server's key cannot rebuild a valid chain.
//! Once a day the chain's head is written down as an anchor ([`Db::anchor_audit`]), which the
//! public programme data publishes: a chain rebuilt even with the key no longer matches what
//! was published. Appending locks the single `audit_head` row first, which orders concurrent
//! writers on PostgreSQL and takes SQLite's write lock before any read.

use sqlx::Row;

use crate::{Db, DbResult, WriteTx, now_ms, sha256_hex};

pub(crate) struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub object: &'a str,
    pub detail: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
    pub keyed: bool,
}

/// The chain's head as written down on a day, for publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditAnchor {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub seq: i64,
    pub hash: String,
    pub at: i64,
}

/// Where the chain is broken: the first event whose hash or link does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: i64,
}

/// An event's hash: HMAC-SHA256 under the key for keyed events, plain SHA-256 for those
/// recorded before the chain was keyed. `None`: a keyed event, and no key to check it with.
fn event_hash(seq: i64, at: i64, entry: &AuditEntry<'_>, prev_hash: &str, key: Option<&[u8]>) -> Option<String> {
    use hmac::{Hmac, Mac};
    // Length-prefixed fields: no two different events serialise to the same bytes.
    let mut bytes = Vec::new();
    for field in [&seq.to_string(), &at.to_string(), entry.actor, entry.action, entry.object, entry.detail, prev_hash] {
        bytes.extend_from_slice(&(field.len() as u64).to_be_bytes());
        bytes.extend_from_slice(field.as_bytes());
    }
    match key {
        None => Some(sha256_hex(&bytes)),
        Some(key) => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
            mac.update(&bytes);
            Some(crate::hex(&mac.finalize().into_bytes()))
        }
    }
}

pub(crate) async fn append(tx: &mut WriteTx, key: Option<&[u8]>, entry: &AuditEntry<'_>) -> DbResult<i64> {
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut **tx)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev_hash: String = head.try_get("hash")?;
    let at = now_ms();
    let hash = event_hash(seq, at, entry, &prev_hash, key).unwrap_or_default();
    sqlx::query(
        "INSERT INTO audit_events (seq, at, actor, action, object, detail, prev_hash, hash, keyed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(seq)
    .bind(at)
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.object)
    .bind(entry.detail)
    .bind(&prev_hash)
    .bind(&hash)
    .bind(i64::from(key.is_some()))
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1").bind(&hash).execute(&mut **tx).await?;
    Ok(seq)
}

const EVENT_COLUMNS: &str = "seq, at, actor, action, object, detail, prev_hash, hash, keyed";

fn event_from(row: &sqlx::any::AnyRow) -> DbResult<AuditEvent> {
    Ok(AuditEvent {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        object: row.try_get("object")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        keyed: row.try_get::<i64, _>("keyed")? != 0,
    })
}

impl Db {
    /// The newest events first, at most `limit`, before sequence number `before_seq`.
    pub async fn audit_events(&self, before_seq: i64, limit: i64) -> DbResult<Vec<AuditEvent>> {
        let rows =
            sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT $2"))
                .bind(before_seq)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(event_from).collect()
    }

    /// Walks the chain in order up to the head as it stands when the walk begins (events
    /// appended meanwhile are not judged); `Ok(None)` when every link holds.
    pub async fn verify_audit_chain(&self) -> DbResult<Option<ChainBreak>> {
        const PAGE: i64 = 1000;
        let head =
            sqlx::query("SELECT seq, hash, legacy_until FROM audit_head WHERE id = 1").fetch_one(&self.pool).await?;
        let (head_seq, head_hash): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
        // With a key, only the events from before the chain was keyed may be unkeyed.
        let legacy_until: i64 = head.try_get("legacy_until")?;
        let mut prev_hash = String::new();
        let mut after = 0;
        while after < head_seq {
            let rows = sqlx::query(&format!(
                "SELECT {EVENT_COLUMNS} FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
            ))
            .bind(after)
            .bind(head_seq)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                // Events up to the head are missing.
                return Ok(Some(ChainBreak { seq: after + 1 }));
            }
            for row in &rows {
                let event = event_from(row)?;
                let entry = AuditEntry {
                    actor: &event.actor,
                    action: &event.action,
                    object: &event.object,
                    detail: &event.detail,
                };
                if !event.keyed && self.audit_key.is_some() && event.seq > legacy_until {
                    return Ok(Some(ChainBreak { seq: event.seq }));
                }
                let key = if event.keyed { self.audit_key.as_deref().map(Some) } else { Some(None) };
                let expected = key.and_then(|key| event_hash(event.seq, event.at, &entry, &prev_hash, key));
                if event.seq != after + 1 || event.prev_hash != prev_hash || Some(&event.hash) != expected.as_ref() {
                    return Ok(Some(ChainBreak { seq: after + 1 }));
                }
                prev_hash = event.hash;
                after = event.seq;
            }
        }
        if head_hash != prev_hash {
            return Ok(Some(ChainBreak { seq: head_seq }));
        }
        // What was published must still be in the chain.
        for anchor in self.audit_anchors(i64::MAX).await? {
            let at_seq: Option<String> = sqlx::query("SELECT hash FROM audit_events WHERE seq = $1")
                .bind(anchor.seq)
                .fetch_optional(&self.pool)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
            if anchor.seq > 0 && at_seq.as_deref() != Some(anchor.hash.as_str()) {
                return Ok(Some(ChainBreak { seq: anchor.seq }));
            }
        }
        Ok(None)
    }

    /// Checks that `key` is the audit key this database was first used with (recording it the
    /// first time): every server of one database must key the chain alike.
    pub async fn check_audit_key(&self, key: &[u8]) -> DbResult<bool> {
        use hmac::{Hmac, Mac};
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else { return Ok(false) };
        mac.update(b"grappe audit key check");
        let check = crate::hex(&mac.finalize().into_bytes());
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE installation SET audit_key_check = $1 WHERE singleton = 1 AND audit_key_check = ''")
            .bind(&check)
            .execute(&mut *tx)
            .await?;
        let stored: String = sqlx::query("SELECT audit_key_check FROM installation WHERE singleton = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok(stored == check)
    }

    /// A copy of this handle that keys the audit chain's links with `key`.
    pub fn with_audit_key(mut self, key: &[u8]) -> Db {
        self.audit_key = Some(key.into());
        self
    }

    pub(crate) fn audit_key(&self) -> Option<&[u8]> {
        self.audit_key.as_deref()
    }

    /// Writes the chain's head down for `day` (once: a day keeps its first anchor). An empty
    /// chain has nothing to anchor: false, and the caller tries again later.
    pub async fn anchor_audit(&self, day: &str) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(&mut *tx).await?;
        let (seq, hash): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
        if seq == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO audit_anchors (day, seq, hash, at) VALUES ($1, $2, $3, $4) ON CONFLICT (day) DO NOTHING",
        )
        .bind(day)
        .bind(seq)
        .bind(&hash)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The anchors, newest first, at most `limit`.
    pub async fn audit_anchors(&self, limit: i64) -> DbResult<Vec<AuditAnchor>> {
        let rows = sqlx::query("SELECT day, seq, hash, at FROM audit_anchors ORDER BY day DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditAnchor {
                    day: row.try_get("day")?,
                    seq: row.try_get("seq")?,
                    hash: row.try_get("hash")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    /// Records an event on its own, for actions that change nothing else in the database.
    pub async fn audit(&self, actor: &str, action: &str, object: &str, detail: &str) -> DbResult<i64> {
        let mut tx = self.write_tx().await?;
        let seq = append(&mut tx, self.audit_key(), &AuditEntry { actor, action, object, detail }).await?;
        tx.commit().await?;
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use crate::scratch::Scratch;

    #[tokio::test]
    async fn an_edited_event_breaks_the_chain_where_it_was_edited() {
        let scratch = Scratch::new("audit").await;
        let db = &scratch.db;
        for n in 1..=3 {
            db.audit("test", "thing.do", &format!("thing:{n}"), "").await.unwrap();
        }
        assert_eq!(db.verify_audit_chain().await.unwrap(), None);
        sqlx::query("UPDATE audit_events SET detail = 'edited' WHERE seq = 2").execute(db.pool()).await.unwrap();
        assert_eq!(db.verify_audit_chain().await.unwrap().map(|broken| broken.seq), Some(2));
        sqlx::query("DELETE FROM audit_events WHERE seq >= 2").execute(db.pool()).await.unwrap();
        assert_eq!(db.verify_audit_chain().await.unwrap().map(|broken| broken.seq), Some(2));
        scratch.close().await;
    }
}
