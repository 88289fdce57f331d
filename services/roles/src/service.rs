//! roles' gRPC handlers: the admin API (callers must hold `admin`) and the
//! internal API for other modules.

use std::sync::Arc;

use interlock_common::page::{Cursor, split_page};
use interlock_common::{ApiError, context, timestamp, validate};
use interlock_proto::roles::v1::roles_admin_server::RolesAdmin;
use interlock_proto::roles::v1::roles_internal_server::RolesInternal;
use interlock_proto::roles::v1::*;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::domain::RoleName;
use crate::store::{self, Removed, Revoked};

pub struct RolesState {
    pub pool: PgPool,
    pub default_roles: Vec<String>,
}

#[derive(Clone)]
pub struct Roles(pub Arc<RolesState>);

impl Roles {
    /// The caller's user id, if they hold `admin`.
    async fn require_admin<T>(&self, req: &Request<T>) -> Result<uuid::Uuid, Status> {
        let user = context::user(req)?;
        let roles = store::roles_of(&self.0.pool, user.user_id)
            .await
            .map_err(ApiError::from)?
            .unwrap_or_default();
        if roles.iter().any(|r| r == crate::ADMIN) {
            Ok(user.user_id)
        } else {
            Err(Status::permission_denied("the admin role is required"))
        }
    }

    async fn known_user(&self, user_id: uuid::Uuid) -> Result<(), Status> {
        if store::subject_exists(&self.0.pool, user_id)
            .await
            .map_err(ApiError::from)?
        {
            Ok(())
        } else {
            Err(Status::not_found(format!("user {user_id} not found")))
        }
    }
}

#[tonic::async_trait]
impl RolesAdmin for Roles {
    async fn grant(&self, req: Request<GrantRequest>) -> Result<Response<GrantResponse>, Status> {
        let admin = self.require_admin(&req).await?;
        let body = req.get_ref();
        let user_id = validate::uuid("user_id", &body.user_id)?;
        let role = RoleName::parse("role", &body.role)?;
        self.known_user(user_id).await?;
        let changed = store::grant(&self.0.pool, user_id, role.as_str(), &admin.to_string())
            .await
            .map_err(ApiError::from)?;
        tracing::info!(%admin, %user_id, role = role.as_str(), changed, "role granted");
        Ok(Response::new(GrantResponse { changed }))
    }

    async fn revoke(
        &self,
        req: Request<RevokeRequest>,
    ) -> Result<Response<RevokeResponse>, Status> {
        let admin = self.require_admin(&req).await?;
        let body = req.get_ref();
        let user_id = validate::uuid("user_id", &body.user_id)?;
        let role = RoleName::parse("role", &body.role)?;
        self.known_user(user_id).await?;
        let outcome = store::revoke(&self.0.pool, user_id, role.as_str())
            .await
            .map_err(ApiError::from)?;
        if outcome == Revoked::LastAdmin {
            return Err(Status::failed_precondition("cannot revoke the last admin"));
        }
        let changed = outcome == Revoked::Yes;
        tracing::info!(%admin, %user_id, role = role.as_str(), changed, "role revoked");
        Ok(Response::new(RevokeResponse { changed }))
    }

    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        self.require_admin(&req).await?;
        let body = req.get_ref();
        let user_id = validate::optional_uuid("user_id", &body.user_id)?;
        let role = if body.role.is_empty() {
            None
        } else {
            Some(RoleName::parse("role", &body.role)?)
        };
        let limit = validate::page_size("page_size", body.page_size, 100, 500)?;
        let after = Cursor::decode("page_token", &body.page_token)?;
        let rows = store::list(
            &self.0.pool,
            user_id,
            role.as_ref().map(|r| r.as_str()),
            after,
            limit + 1,
        )
        .await
        .map_err(ApiError::from)?;
        let (rows, next_page_token) = split_page(rows, limit, |a| Cursor {
            at: a.granted_at,
            id: a.user_id,
            tie: a.role.clone(),
        });
        Ok(Response::new(ListResponse {
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
        }))
    }
}

#[tonic::async_trait]
impl RolesInternal for Roles {
    async fn get_roles(
        &self,
        req: Request<GetRolesRequest>,
    ) -> Result<Response<GetRolesResponse>, Status> {
        let user_id = validate::uuid("user_id", &req.get_ref().user_id)?;
        let roles = store::roles_of(&self.0.pool, user_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| Status::not_found(format!("user {user_id} not found")))?;
        Ok(Response::new(GetRolesResponse { roles }))
    }

    async fn assign_default_roles(
        &self,
        req: Request<AssignDefaultRolesRequest>,
    ) -> Result<Response<AssignDefaultRolesResponse>, Status> {
        let user_id = validate::uuid("user_id", &req.get_ref().user_id)?;
        store::add_subject(&self.0.pool, user_id, &self.0.default_roles)
            .await
            .map_err(ApiError::from)?;
        let roles = store::roles_of(&self.0.pool, user_id)
            .await
            .map_err(ApiError::from)?
            .unwrap_or_default();
        Ok(Response::new(AssignDefaultRolesResponse { roles }))
    }

    async fn remove_user(
        &self,
        req: Request<RemoveUserRequest>,
    ) -> Result<Response<RemoveUserResponse>, Status> {
        let user_id = validate::uuid("user_id", &req.get_ref().user_id)?;
        let removed = match store::remove_subject(&self.0.pool, user_id)
            .await
            .map_err(ApiError::from)?
        {
            Removed::Yes => true,
            Removed::NotFound => false,
            Removed::LastAdmin => {
                return Err(Status::failed_precondition("cannot remove the last admin"));
            }
        };
        Ok(Response::new(RemoveUserResponse { removed }))
    }
}
