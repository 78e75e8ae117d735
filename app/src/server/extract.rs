//! Extractors for the raw axum handlers (the CSV exports and the live stream): the
//! caller, admitted at the access level its type names, and typed query parameters, in
//! the handler's signature, so the check cannot be forgotten or put after other work.
//! A refusal answers as every `/api/` error does.

use crate::model::{AppError, Role};
use crate::server::AppState;
use crate::server::auth::{
    Access, CurrentUser, guard,
    request::{self, RequestInfo},
    sessions::Activity,
};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// An access level, as a type.
pub trait Level: Send + Sync {
    const ACCESS: Access;
    /// Whether a request at this level keeps its login from idling out.
    const ACTIVITY: Activity = Activity::User;
}

/// Technical workers and senior managers.
pub struct Staff;
impl Level for Staff {
    const ACCESS: Access = Access::STAFF;
}

/// Senior managers.
pub struct Management;
impl Level for Management {
    const ACCESS: Access = Access::MANAGEMENT;
}

/// Customers.
pub struct Customers;
impl Level for Customers {
    const ACCESS: Access = Access::CUSTOMER;
}

/// Every role, for the page's own traffic (the live stream): an open tab does not keep
/// a login alive.
pub struct AnyRoleInBackground;
impl Level for AnyRoleInBackground {
    const ACCESS: Access = Access::Roles(&Role::ALL);
    const ACTIVITY: Activity = Activity::Background;
}

/// The caller, admitted at level `L`, and what the request says about them.
pub struct Admitted<L: Level> {
    pub caller: CurrentUser,
    pub info: RequestInfo,
    level: PhantomData<L>,
}

impl<L: Level> FromRequestParts<AppState> for Admitted<L> {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refused> {
        let info = request::from_parts(parts, state.auth.cookie_secure)?;
        let caller = guard::require(state, &info, L::ACCESS, L::ACTIVITY).await?;
        Ok(Self {
            caller,
            info,
            level: PhantomData,
        })
    }
}

/// Query parameters of type `T`; ones that do not parse are the app's `BadRequest`.
pub struct TypedQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for TypedQuery<T> {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refused> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(query)| Self(query))
            .map_err(|_| Refused(AppError::BadRequest))
    }
}

/// An error a raw handler answers with: its status and the error as JSON.
pub struct Refused(pub AppError);

impl From<AppError> for Refused {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        crate::server::error_response(self.0)
    }
}
