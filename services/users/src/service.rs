//! users' gRPC handlers.

use std::sync::Arc;

use interlock_common::client::PeerChannel;
use interlock_common::{ApiError, context, timestamp, validate};
use interlock_proto::roles::v1::GetRolesRequest;
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::users::v1::users_internal_server::UsersInternal;
use interlock_proto::users::v1::users_service_server::UsersService;
use interlock_proto::users::v1::*;
use sqlx::PgPool;
use tonic::{Code, Request, Response, Status};
use uuid::Uuid;

use crate::domain::ProfileChanges;
use crate::store::{self, Profile};

/// Most ids BatchGetUsers takes.
pub const MAX_BATCH: usize = 100;

pub struct UsersState {
    pub pool: PgPool,
    pub roles: RolesInternalClient<PeerChannel>,
}

#[derive(Clone)]
pub struct Users(pub Arc<UsersState>);

impl Users {
    /// The user's roles from the roles module; a user roles does not know
    /// (yet) has none.
    async fn roles(&self, id: Uuid) -> Result<Vec<String>, ApiError> {
        match self
            .0
            .roles
            .clone()
            .get_roles(GetRolesRequest {
                user_id: id.to_string(),
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().roles),
            Err(s) if s.code() == Code::NotFound => Ok(Vec::new()),
            Err(s) => Err(ApiError::upstream("roles", s)),
        }
    }

    async fn with_roles(&self, p: Profile) -> Result<User, ApiError> {
        let roles = self.roles(p.id).await?;
        Ok(to_proto(p, roles))
    }

    async fn load(&self, id: Uuid) -> Result<User, Status> {
        let p = store::get(&self.0.pool, id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| Status::not_found(format!("user {id} not found")))?;
        Ok(self.with_roles(p).await?)
    }
}

fn to_proto(p: Profile, roles: Vec<String>) -> User {
    User {
        id: p.id.to_string(),
        login: p.login,
        email: p.email,
        first_name: p.first_name,
        last_name: p.last_name,
        roles,
        created_at: Some(timestamp(p.created_at)),
        updated_at: Some(timestamp(p.updated_at)),
        display_name: p.display_name,
        locale: p.locale,
        time_zone: p.time_zone,
    }
}

#[tonic::async_trait]
impl UsersService for Users {
    async fn get_me(&self, req: Request<GetMeRequest>) -> Result<Response<User>, Status> {
        let me = context::user(&req)?.user_id;
        Ok(Response::new(self.load(me).await?))
    }

    async fn update_me(&self, req: Request<UpdateMeRequest>) -> Result<Response<User>, Status> {
        let me = context::user(&req)?.user_id;
        let changes = ProfileChanges::parse(req.get_ref())?;
        let p = store::update(&self.0.pool, me, &changes)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| Status::not_found(format!("user {me} not found")))?;
        Ok(Response::new(self.with_roles(p).await?))
    }
}

#[tonic::async_trait]
impl UsersInternal for Users {
    async fn get_user(&self, req: Request<GetUserRequest>) -> Result<Response<User>, Status> {
        let id = validate::uuid("id", &req.get_ref().id)?;
        Ok(Response::new(self.load(id).await?))
    }

    async fn batch_get_users(
        &self,
        req: Request<BatchGetUsersRequest>,
    ) -> Result<Response<BatchGetUsersResponse>, Status> {
        let ids = validate::uuid_list("ids", &req.get_ref().ids, MAX_BATCH)?;
        let mut found: std::collections::HashMap<Uuid, Profile> =
            store::get_many(&self.0.pool, &ids)
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .map(|p| (p.id, p))
                .collect();
        let mut missing = Vec::new();
        let mut ordered = Vec::with_capacity(found.len());
        for id in ids {
            match found.remove(&id) {
                Some(p) => ordered.push(p),
                None => missing.push(id.to_string()),
            }
        }
        let users =
            futures::future::try_join_all(ordered.into_iter().map(|p| self.with_roles(p))).await?;
        Ok(Response::new(BatchGetUsersResponse { users, missing }))
    }

    async fn create_user(&self, req: Request<CreateUserRequest>) -> Result<Response<User>, Status> {
        let b = req.get_ref();
        let now = chrono::Utc::now();
        let wanted = Profile {
            id: validate::uuid("id", &b.id)?,
            login: validate::text("login", &b.login, 3, 32)?.to_ascii_lowercase(),
            email: validate::text("email", &b.email, 3, 254)?.to_ascii_lowercase(),
            first_name: validate::text("first_name", &b.first_name, 1, 100)?,
            last_name: validate::text("last_name", &b.last_name, 1, 100)?,
            display_name: String::new(),
            locale: String::new(),
            time_zone: String::new(),
            created_at: now,
            updated_at: now,
        };
        if !store::insert(&self.0.pool, &wanted)
            .await
            .map_err(ApiError::from)?
        {
            // Idempotent retry: the same data is fine, other data is not.
            let existing = store::get(&self.0.pool, wanted.id)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| Status::aborted("profile changed concurrently, retry"))?;
            let same = existing.login == wanted.login
                && existing.email == wanted.email
                && existing.first_name == wanted.first_name
                && existing.last_name == wanted.last_name;
            if !same {
                return Err(Status::already_exists(format!(
                    "user {} exists with other data",
                    wanted.id
                )));
            }
        }
        Ok(Response::new(self.load(wanted.id).await?))
    }

    async fn delete_user(
        &self,
        req: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let id = validate::uuid("id", &req.get_ref().id)?;
        let deleted = store::delete(&self.0.pool, id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(DeleteUserResponse { deleted }))
    }
}
