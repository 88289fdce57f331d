//! users' gRPC handlers: the external API (GetMe, UpdateMe) and the
//! internal one for other modules.
//!
//! Each handler parses its request, calls one operation on [`Users`] and
//! maps the answer. Operations fail with [`UsersError`]; `?` turns that into
//! a status through its one mapping, so no handler builds a status itself.

use std::collections::HashMap;
use std::sync::Arc;

use interlock_common::client::PeerChannel;
use interlock_common::{ApiError, context, timestamp, validate};
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::roles::v1::{BatchGetRolesRequest, GetRolesRequest};
use interlock_proto::users::v1::users_internal_server::UsersInternal;
use interlock_proto::users::v1::users_service_server::UsersService;
use interlock_proto::users::v1::*;
use sqlx::PgPool;
use tonic::{Code, Request, Response, Status};
use uuid::Uuid;

use crate::domain::{NewProfile, ProfileChanges};
use crate::error::UsersError;
use crate::store::{self, Profile};

/// Most ids BatchGetUsers takes.
pub const MAX_BATCH: usize = 100;

pub struct UsersState {
    pub pool: PgPool,
    pub roles: RolesInternalClient<PeerChannel>,
}

#[derive(Clone)]
pub struct Users(pub Arc<UsersState>);

// === impl Users: operations ===

impl Users {
    /// The user's roles from the roles module; a user roles does not know
    /// (yet) has none.
    async fn roles(&self, id: Uuid) -> Result<Vec<String>, UsersError> {
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
            Err(s) => Err(ApiError::upstream("roles", s).into()),
        }
    }

    /// The roles of every profile in one call to roles (a user roles does
    /// not know has none, as in [`Self::roles`]).
    async fn roles_of_many(
        &self,
        profiles: &[Profile],
    ) -> Result<HashMap<Uuid, Vec<String>>, UsersError> {
        if profiles.is_empty() {
            return Ok(HashMap::new());
        }
        let answer = self
            .0
            .roles
            .clone()
            .batch_get_roles(BatchGetRolesRequest {
                user_ids: profiles.iter().map(|p| p.id.to_string()).collect(),
            })
            .await
            .map_err(|s| ApiError::upstream("roles", s))?;
        Ok(answer
            .into_inner()
            .users
            .into_iter()
            .filter_map(|u| Some((Uuid::parse_str(&u.user_id).ok()?, u.roles)))
            .collect())
    }

    async fn with_roles(&self, p: Profile) -> Result<User, UsersError> {
        let roles = self.roles(p.id).await?;
        Ok(to_proto(p, roles))
    }

    /// A profile with its current roles.
    async fn load(&self, id: Uuid) -> Result<User, UsersError> {
        let p = store::get(&self.0.pool, id)
            .await?
            .ok_or(UsersError::NotFound(id))?;
        self.with_roles(p).await
    }

    /// Applies `changes` to the profile; the result with its roles.
    async fn update(&self, id: Uuid, changes: &ProfileChanges) -> Result<User, UsersError> {
        let p = store::update(&self.0.pool, id, changes)
            .await?
            .ok_or(UsersError::NotFound(id))?;
        self.with_roles(p).await
    }

    /// The profiles of `ids` in their order, and the ids that have none.
    async fn batch(&self, ids: Vec<Uuid>) -> Result<BatchGetUsersResponse, UsersError> {
        let mut found: HashMap<Uuid, Profile> = store::get_many(&self.0.pool, &ids)
            .await?
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
        let mut roles = self.roles_of_many(&ordered).await?;
        let users = ordered
            .into_iter()
            .map(|p| {
                let r = roles.remove(&p.id).unwrap_or_default();
                to_proto(p, r)
            })
            .collect();
        Ok(BatchGetUsersResponse { users, missing })
    }

    /// Creates the profile, or accepts a retry that carries the same data.
    async fn create(&self, new: NewProfile) -> Result<User, UsersError> {
        if !store::insert(&self.0.pool, &new).await? {
            let existing = store::get(&self.0.pool, new.id)
                .await?
                .ok_or(UsersError::ChangedConcurrently)?;
            if !existing.is_created_from(&new) {
                return Err(UsersError::ConflictingProfile(new.id));
            }
        }
        self.load(new.id).await
    }

    /// Deletes the profile; false when there was none.
    async fn delete(&self, id: Uuid) -> Result<bool, UsersError> {
        Ok(store::delete(&self.0.pool, id).await?)
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

// === impl UsersService ===

#[tonic::async_trait]
impl UsersService for Users {
    async fn get_me(&self, req: Request<GetMeRequest>) -> Result<Response<User>, Status> {
        let me = context::user(&req)?.user_id;
        Ok(Response::new(self.load(me).await?))
    }

    async fn update_me(&self, req: Request<UpdateMeRequest>) -> Result<Response<User>, Status> {
        let me = context::user(&req)?.user_id;
        let changes = ProfileChanges::parse(req.get_ref())?;
        Ok(Response::new(self.update(me, &changes).await?))
    }
}

// === impl UsersInternal ===

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
        Ok(Response::new(self.batch(ids).await?))
    }

    async fn create_user(&self, req: Request<CreateUserRequest>) -> Result<Response<User>, Status> {
        let new = NewProfile::parse(req.get_ref())?;
        Ok(Response::new(self.create(new).await?))
    }

    async fn delete_user(
        &self,
        req: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let id = validate::uuid("id", &req.get_ref().id)?;
        let deleted = self.delete(id).await?;
        Ok(Response::new(DeleteUserResponse { deleted }))
    }
}
