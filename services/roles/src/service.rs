//! roles' gRPC handlers: the admin API (callers must hold `admin`) and the
//! internal API for other modules.
//!
//! Each handler parses its request, calls one operation on [`Roles`] and
//! maps the answer. Operations fail with [`RolesError`]; `?` turns that into
//! a status through its one mapping, so no handler builds a status itself.

use std::sync::Arc;

use interlock_common::context::{self, AuthenticatedUser};
use interlock_common::page::{Cursor, split_page};
use interlock_common::{timestamp, validate};
use interlock_proto::roles::v1::roles_admin_server::RolesAdmin;
use interlock_proto::roles::v1::roles_internal_server::RolesInternal;
use interlock_proto::roles::v1::*;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{AssignmentQuery, RoleName};
use crate::error::RolesError;
use crate::store::{self, Removed, Revoked};

/// The most users one BatchGetRoles may name.
const MAX_BATCH: usize = 1000;

pub struct RolesState {
    pub pool: PgPool,
    pub default_roles: Vec<String>,
}

#[derive(Clone)]
pub struct Roles(pub Arc<RolesState>);

// === impl Roles: operations ===

impl Roles {
    /// The caller's user id, if they hold `admin`.
    async fn require_admin(&self, caller: &AuthenticatedUser) -> Result<Uuid, RolesError> {
        let roles = store::roles_of(&self.0.pool, caller.user_id)
            .await?
            .unwrap_or_default();
        if roles.iter().any(|r| r == crate::ADMIN) {
            Ok(caller.user_id)
        } else {
            Err(RolesError::AdminRequired)
        }
    }

    async fn known_user(&self, user_id: Uuid) -> Result<(), RolesError> {
        if store::subject_exists(&self.0.pool, user_id).await? {
            Ok(())
        } else {
            Err(RolesError::UnknownUser(user_id))
        }
    }

    /// Grants `role`; false when it was already held.
    async fn grant_role(
        &self,
        admin: Uuid,
        user_id: Uuid,
        role: &RoleName,
    ) -> Result<bool, RolesError> {
        self.known_user(user_id).await?;
        let changed =
            store::grant(&self.0.pool, user_id, role.as_str(), &admin.to_string()).await?;
        tracing::info!(%admin, %user_id, role = role.as_str(), changed, "role granted");
        Ok(changed)
    }

    /// Revokes `role`; false when it was not held. Never the last admin.
    async fn revoke_role(
        &self,
        admin: Uuid,
        user_id: Uuid,
        role: &RoleName,
    ) -> Result<bool, RolesError> {
        self.known_user(user_id).await?;
        let changed = match store::revoke(&self.0.pool, user_id, role.as_str()).await? {
            Revoked::Yes => true,
            Revoked::NotHeld => false,
            Revoked::LastAdmin => return Err(RolesError::LastAdminRevoke),
        };
        tracing::info!(%admin, %user_id, role = role.as_str(), changed, "role revoked");
        Ok(changed)
    }

    /// One page of assignments.
    async fn assignments(&self, query: AssignmentQuery) -> Result<ListResponse, RolesError> {
        let rows = store::list(
            &self.0.pool,
            query.user_id,
            query.role.as_ref().map(RoleName::as_str),
            query.after,
            query.limit + 1,
        )
        .await?;
        let (rows, next_page_token) = split_page(rows, query.limit, |a| Cursor {
            at: a.granted_at,
            id: a.user_id,
            tie: a.role.clone(),
        });
        Ok(ListResponse {
            assignments: rows
                .into_iter()
                .map(|a| RoleAssignment {
                    user_id: a.user_id.to_string(),
                    role: a.role,
                    granted_by: a.granted_by,
                    granted_at: Some(timestamp(a.granted_at)),
                })
                .collect(),
            next_page_token,
        })
    }

    /// The user's roles, sorted.
    async fn roles_of(&self, user_id: Uuid) -> Result<Vec<String>, RolesError> {
        store::roles_of(&self.0.pool, user_id)
            .await?
            .ok_or(RolesError::UnknownUser(user_id))
    }

    /// Records a new user with the default roles (idempotent); their roles.
    async fn assign_defaults(&self, user_id: Uuid) -> Result<Vec<String>, RolesError> {
        store::add_subject(&self.0.pool, user_id, &self.0.default_roles).await?;
        Ok(store::roles_of(&self.0.pool, user_id)
            .await?
            .unwrap_or_default())
    }

    /// Forgets a user; false when roles did not know them.
    async fn remove(&self, user_id: Uuid) -> Result<bool, RolesError> {
        match store::remove_subject(&self.0.pool, user_id).await? {
            Removed::Yes => Ok(true),
            Removed::NotFound => Ok(false),
            Removed::LastAdmin => Err(RolesError::LastAdminRemove),
        }
    }
}

// === impl RolesAdmin ===

#[tonic::async_trait]
impl RolesAdmin for Roles {
    async fn grant(&self, req: Request<GrantRequest>) -> Result<Response<GrantResponse>, Status> {
        let admin = self.require_admin(context::user(&req)?).await?;
        let body = req.get_ref();
        let user_id = validate::uuid("user_id", &body.user_id)?;
        let role = RoleName::parse("role", &body.role)?;
        let changed = self.grant_role(admin, user_id, &role).await?;
        Ok(Response::new(GrantResponse { changed }))
    }

    async fn revoke(
        &self,
        req: Request<RevokeRequest>,
    ) -> Result<Response<RevokeResponse>, Status> {
        let admin = self.require_admin(context::user(&req)?).await?;
        let body = req.get_ref();
        let user_id = validate::uuid("user_id", &body.user_id)?;
        let role = RoleName::parse("role", &body.role)?;
        let changed = self.revoke_role(admin, user_id, &role).await?;
        Ok(Response::new(RevokeResponse { changed }))
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        self.require_admin(context::user(&req)?).await?;
        let query = AssignmentQuery::parse(req.get_ref())?;
        Ok(Response::new(self.assignments(query).await?))
    }
}

// === impl RolesInternal ===

#[tonic::async_trait]
impl RolesInternal for Roles {
    async fn get_roles(
        &self,
        req: Request<GetRolesRequest>,
    ) -> Result<Response<GetRolesResponse>, Status> {
        let user_id = validate::uuid("user_id", &req.get_ref().user_id)?;
        let roles = self.roles_of(user_id).await?;
        Ok(Response::new(GetRolesResponse { roles }))
    }

    async fn batch_get_roles(
        &self,
        req: Request<BatchGetRolesRequest>,
    ) -> Result<Response<BatchGetRolesResponse>, Status> {
        // Validated, duplicates dropped in the order asked.
        let ids = validate::uuid_list("user_ids", &req.get_ref().user_ids, MAX_BATCH)?;
        let mut known = store::roles_of_many(&self.0.pool, &ids)
            .await
            .map_err(RolesError::from)?;
        let mut out = BatchGetRolesResponse::default();
        for id in ids {
            match known.remove(&id) {
                Some(roles) => out.users.push(UserRoles {
                    user_id: id.to_string(),
                    roles,
                }),
                None => out.unknown.push(id.to_string()),
            }
        }
        Ok(Response::new(out))
    }

    async fn assign_default_roles(
        &self,
        req: Request<AssignDefaultRolesRequest>,
    ) -> Result<Response<AssignDefaultRolesResponse>, Status> {
        let user_id = validate::uuid("user_id", &req.get_ref().user_id)?;
        let roles = self.assign_defaults(user_id).await?;
        Ok(Response::new(AssignDefaultRolesResponse { roles }))
    }

    async fn remove_user(
        &self,
        req: Request<RemoveUserRequest>,
    ) -> Result<Response<RemoveUserResponse>, Status> {
        let user_id = validate::uuid("user_id", &req.get_ref().user_id)?;
        let removed = self.remove(user_id).await?;
        Ok(Response::new(RemoveUserResponse { removed }))
    }
}
