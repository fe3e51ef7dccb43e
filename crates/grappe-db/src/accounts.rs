//! Organisations, users and role grants. Grants and revocations are audited in the same
//! transaction as the change.

use grappe_domain::account::{Email, OrganisationProfile, RoleGrant, Scope, ScopeKind};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, AuditEntry};
use crate::{Db, DbError, DbResult, WriteTx, conflict_as, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub size_class: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub organisation_id: Option<i64>,
    pub disabled: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub id: i64,
    pub user_id: i64,
    pub grant: RoleGrant,
}

pub struct NewUser<'a> {
    pub email: &'a Email,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub organisation_id: Option<i64>,
}

const USER_COLUMNS: &str = "id, email, name, password_hash, organisation_id, disabled, created_at";

fn user_from(row: &AnyRow) -> DbResult<UserRow> {
    Ok(UserRow {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        organisation_id: row.try_get("organisation_id")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

fn grant_from(row: &AnyRow) -> DbResult<GrantRow> {
    let role: String = row.try_get("role")?;
    let scope_kind: String = row.try_get("scope_kind")?;
    let corrupt = |error: grappe_domain::account::InvalidInput| DbError::Corrupt(error.to_string());
    Ok(GrantRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        grant: RoleGrant {
            role: role.parse().map_err(corrupt)?,
            scope: Scope::from_columns(&scope_kind, row.try_get("scope_id")?).map_err(corrupt)?,
        },
    })
}

impl Db {
    pub async fn create_organisation(&self, name: &str, profile: OrganisationProfile) -> DbResult<i64> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "INSERT INTO organisations (name, kind, size_class, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(profile.kind().as_str())
        .bind(profile.size_class().map(|size| size.as_str()))
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_as("an organisation with this name"))?;
        tx.commit().await?;
        Ok(row.try_get(0)?)
    }

    pub async fn organisation_by_name(&self, name: &str) -> DbResult<Option<OrganisationRow>> {
        let row = sqlx::query("SELECT id, name, kind, size_class FROM organisations WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(organisation_from).transpose()
    }

    pub async fn list_organisations(&self) -> DbResult<Vec<OrganisationRow>> {
        let rows = sqlx::query("SELECT id, name, kind, size_class FROM organisations ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(organisation_from).collect()
    }

    pub async fn create_user(&self, user: NewUser<'_>, actor: &str) -> DbResult<UserRow> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO users (email, name, password_hash, organisation_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}"
        ))
        .bind(user.email.as_str())
        .bind(user.name)
        .bind(user.password_hash)
        .bind(user.organisation_id)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db_error) if db_error.is_foreign_key_violation() => {
                DbError::NotFound(format!("organisation {}", user.organisation_id.unwrap_or(0)))
            }
            _ => conflict_as("a user with this email")(error),
        })?;
        let created = user_from(&row)?;
        let entry = AuditEntry { actor, action: "user.create", object: &format!("user:{}", created.id), detail: "" };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn user_by_email(&self, email: &Email) -> DbResult<Option<UserRow>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"))
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    pub async fn user_by_id(&self, id: i64) -> DbResult<Option<UserRow>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    /// The display names of the users with these ids; an id with no user is left out.
    pub async fn user_names(&self, ids: &[i64]) -> DbResult<std::collections::BTreeMap<i64, String>> {
        if ids.is_empty() {
            return Ok(std::collections::BTreeMap::new());
        }
        // Ids are integers, so inlining them is safe.
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let rows =
            sqlx::query(&format!("SELECT id, name FROM users WHERE id IN ({list})")).fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok((row.try_get("id")?, row.try_get("name")?))).collect()
    }

    /// Users by id, at most `limit` of them after `after_id` (keyset pagination).
    pub async fn list_users(&self, after_id: i64, limit: i64) -> DbResult<Vec<UserRow>> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2"))
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from).collect()
    }

    pub async fn set_password_hash(&self, user_id: i64, password_hash: &str, actor: &str) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        let result = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if result.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("user {user_id}")));
        }
        let entry = AuditEntry { actor, action: "user.password", object: &format!("user:{user_id}"), detail: "" };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn grants_of(&self, user_id: i64) -> DbResult<Vec<GrantRow>> {
        let rows = sqlx::query(
            "SELECT id, user_id, role, scope_kind, scope_id FROM role_grants WHERE user_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_from).collect()
    }

    /// The grants of several users at once (a page listing people), by user then grant.
    pub async fn grants_of_users(&self, user_ids: &[i64]) -> DbResult<Vec<GrantRow>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        // Ids are integers: written into the statement, one round trip whatever their number.
        let list = user_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        let rows = sqlx::query(&format!(
            "SELECT id, user_id, role, scope_kind, scope_id FROM role_grants WHERE user_id IN ({list}) \
             ORDER BY user_id, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_from).collect()
    }

    /// Grants a role; granting one the user already holds returns the existing grant.
    pub async fn grant_role(&self, user_id: i64, grant: &RoleGrant, actor: &str) -> DbResult<GrantRow> {
        let mut tx = self.write_tx().await?;
        let created = self.grant_in(&mut tx, user_id, grant, actor).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Grants a role inside a transaction (idempotent), audited in it.
    pub(crate) async fn grant_in(
        &self,
        tx: &mut WriteTx,
        user_id: i64,
        grant: &RoleGrant,
        actor: &str,
    ) -> DbResult<GrantRow> {
        let (scope_kind, scope_id) = grant.scope.to_columns();
        let existing = sqlx::query(
            "SELECT id, user_id, role, scope_kind, scope_id FROM role_grants \
             WHERE user_id = $1 AND role = $2 AND scope_kind = $3 AND scope_id = $4",
        )
        .bind(user_id)
        .bind(grant.role.as_str())
        .bind(scope_kind)
        .bind(scope_id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = existing {
            return grant_from(&row);
        }
        let row = sqlx::query(
            "INSERT INTO role_grants (user_id, role, scope_kind, scope_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id, user_id, role, scope_kind, scope_id",
        )
        .bind(user_id)
        .bind(grant.role.as_str())
        .bind(scope_kind)
        .bind(scope_id)
        .bind(now_ms())
        .fetch_one(&mut **tx)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db_error) if db_error.is_foreign_key_violation() => {
                DbError::NotFound(format!("user {user_id}"))
            }
            _ => conflict_as("this grant")(error),
        })?;
        let created = grant_from(&row)?;
        let detail = format!("{} {}", grant.role, grant.scope);
        let entry = AuditEntry { actor, action: "role.grant", object: &format!("user:{user_id}"), detail: &detail };
        audit::append(tx, self.audit_key(), &entry).await?;
        Ok(created)
    }

    pub async fn revoke_grant(&self, user_id: i64, grant_id: i64, actor: &str) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "DELETE FROM role_grants WHERE id = $1 AND user_id = $2 \
             RETURNING id, user_id, role, scope_kind, scope_id",
        )
        .bind(grant_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("grant {grant_id} of user {user_id}")))?;
        let revoked = grant_from(&row)?;
        let detail = format!("{} {}", revoked.grant.role, revoked.grant.scope);
        let entry = AuditEntry { actor, action: "role.revoke", object: &format!("user:{user_id}"), detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether the object a grant would be over exists (kinds with no table yet: never).
    pub async fn scope_exists(&self, kind: ScopeKind, id: i64) -> DbResult<bool> {
        let table = match kind {
            ScopeKind::Project => "projects",
            ScopeKind::Organisation => "organisations",
            ScopeKind::Call => "calls",
            ScopeKind::Challenge => "challenges",
        };
        let row =
            sqlx::query(&format!("SELECT id FROM {table} WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.is_some())
    }
}

fn organisation_from(row: &AnyRow) -> DbResult<OrganisationRow> {
    Ok(OrganisationRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        size_class: row.try_get("size_class")?,
    })
}
