//! Browser sessions and API tokens. Only the SHA-256 of a secret is stored: a copy of the
//! database gives no one a way in.

use sqlx::Row;

use crate::accounts::UserRow;
use crate::audit::{self, AuditEntry};
use crate::{Db, DbError, DbResult, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl Db {
    pub async fn create_session(&self, token_hash: &str, user_id: i64, expires_at: i64) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now_ms())
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The enabled user behind an unexpired session.
    pub async fn session_user(&self, token_hash: &str) -> DbResult<Option<UserRow>> {
        let user_id = sqlx::query(
            "SELECT s.user_id FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled = 0",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        match user_id {
            Some(row) => self.user_by_id(row.try_get(0)?).await,
            None => Ok(None),
        }
    }

    pub async fn delete_session(&self, token_hash: &str) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_expired_sessions(&self) -> DbResult<u64> {
        let mut tx = self.write_tx().await?;
        let result =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now_ms()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(result.rows_affected())
    }

    pub async fn create_api_token(&self, user_id: i64, name: &str, token_hash: &str) -> DbResult<ApiTokenRow> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, user_id, name, created_at, revoked_at",
        )
        .bind(user_id)
        .bind(name)
        .bind(token_hash)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        token_from(&row)
    }

    /// The enabled user behind an unrevoked API token.
    pub async fn api_token_user(&self, token_hash: &str) -> DbResult<Option<UserRow>> {
        let row = sqlx::query(
            "SELECT t.user_id FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.disabled = 0",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => self.user_by_id(row.try_get(0)?).await,
            None => Ok(None),
        }
    }

    pub async fn api_tokens_of(&self, user_id: i64) -> DbResult<Vec<ApiTokenRow>> {
        let rows = sqlx::query(
            "SELECT id, user_id, name, created_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from).collect()
    }

    pub async fn api_token(&self, id: i64) -> DbResult<Option<ApiTokenRow>> {
        let row = sqlx::query("SELECT id, user_id, name, created_at, revoked_at FROM api_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from).transpose()
    }

    /// Revokes a token, audited in the same transaction; revoking a revoked token is not an
    /// error.
    pub async fn revoke_api_token(&self, id: i64, actor: &str) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        let result = sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if result.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("token {id}")));
        }
        audit::append(
            &mut tx,
            self.audit_key(),
            &AuditEntry { actor, action: "token.revoke", object: &format!("token:{id}"), detail: "" },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn token_from(row: &sqlx::any::AnyRow) -> DbResult<ApiTokenRow> {
    Ok(ApiTokenRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
