//! Leases: a background loop runs in exactly one server process at a time, the one that holds
//! its lease row. A holder renews before expiry; when it dies, another takes over once the lease
//! has expired. And the installation's name and secret, which all the servers of one database
//! share.

use sqlx::Row;

use crate::{Db, DbResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    pub acquired_at: i64,
    pub expires_at: i64,
    pub ticks: i64,
}

impl Db {
    /// Takes or renews `name` for `holder` until `now + ttl_ms`; true when `holder` now holds it.
    pub async fn try_acquire_lease(&self, name: &str, holder: &str, now: i64, ttl_ms: i64) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let result = sqlx::query(
            "INSERT INTO leases (name, holder, acquired_at, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET \
               acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at ELSE excluded.acquired_at END, \
               holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $3",
        )
        .bind(name)
        .bind(holder)
        .bind(now)
        .bind(now + ttl_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    /// Counts one run of the loop, only while `holder` still holds the lease.
    pub async fn tick_lease(&self, name: &str, holder: &str) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let result = sqlx::query("UPDATE leases SET ticks = ticks + 1 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(result.rows_affected() == 1)
    }

    /// Gives a lease up at shutdown so that another process need not wait for it to expire.
    pub async fn release_lease(&self, name: &str, holder: &str) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn leases(&self) -> DbResult<Vec<LeaseRow>> {
        let rows = sqlx::query("SELECT name, holder, acquired_at, expires_at, ticks FROM leases ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(LeaseRow {
                    name: row.try_get("name")?,
                    holder: row.try_get("holder")?,
                    acquired_at: row.try_get("acquired_at")?,
                    expires_at: row.try_get("expires_at")?,
                    ticks: row.try_get("ticks")?,
                })
            })
            .collect()
    }

    /// This installation's name and secret, made at first use from the random values given:
    /// the same for every server on this database.
    pub async fn installation(&self, fresh_id: &str, fresh_secret: &str) -> DbResult<(String, String)> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO installation (singleton, id, secret) VALUES (1, $1, $2) ON CONFLICT (singleton) DO NOTHING",
        )
        .bind(fresh_id)
        .bind(fresh_secret)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT id, secret FROM installation WHERE singleton = 1").fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok((row.try_get("id")?, row.try_get("secret")?))
    }
}
