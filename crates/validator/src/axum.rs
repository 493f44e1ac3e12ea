//! axum integration (feature `axum`): [`Authorized`] as an extractor, and
//! [`require_two_tokens`] as a middleware (a tower layer through
//! `axum::middleware::from_fn_with_state`).
//!
//! Both read the client from the route parameter the validator names
//! (`{client}` by default) and the access from the method (`GET` read, `PUT`
//! write by default), then answer a refusal with its status, challenge and
//! JSON body. Not for routes without a client parameter.
//!
//! ```no_run
//! # fn demo(validator: crosstenant_validator::Validator) {
//! use axum::{routing::get, Router};
//! use crosstenant_validator::Authorized;
//! async fn read(ok: Authorized) -> String {
//!     format!("{} reads {}", ok.caller_id(), ok.client().name())
//! }
//! let app: Router = Router::new()
//!     .route("/api/{client}/data", get(read))
//!     .with_state(validator);
//! # }
//! ```

use crate::{Authorized, Refusal, Validator};
use axum::extract::{FromRef, FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// A refusal ready to be sent: [`Refusal::to_response`] with the
/// validator's realm.
#[derive(Debug)]
pub struct Denied {
    /// Why.
    pub refusal: Refusal,
    realm: String,
}

impl Denied {
    /// `refusal`, answered with `validator`'s realm.
    pub fn new(validator: &Validator, refusal: Refusal) -> Self {
        Self {
            refusal,
            realm: validator.realm().to_string(),
        }
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        self.refusal.to_response(&self.realm).into_response()
    }
}

/// Checks the request in `parts` for the client its route names.
pub async fn authorize_parts(
    validator: &Validator,
    parts: &mut Parts,
) -> Result<Authorized, Denied> {
    if let Some(done) = parts.extensions.get::<Authorized>() {
        return Ok(done.clone());
    }
    let deny = |r| Denied::new(validator, r);
    let Some(access) = validator.access_for(&parts.method) else {
        return Err(deny(Refusal::MethodNotMapped {
            method: parts.method.to_string(),
        }));
    };
    let param = validator.route_param();
    let params = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|_| {
            deny(Refusal::NoClientInRoute {
                param: param.to_string(),
            })
        })?;
    let Some(client) = params
        .iter()
        .find(|(name, _)| *name == param)
        .map(|(_, v)| v.to_string())
    else {
        return Err(deny(Refusal::NoClientInRoute {
            param: param.to_string(),
        }));
    };
    validator
        .authorize(&parts.headers, &client, access)
        .await
        .map_err(deny)
}

impl<S> FromRequestParts<S> for Authorized
where
    Validator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Denied;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let validator = Validator::from_ref(state);
        authorize_parts(&validator, parts).await
    }
}

/// Middleware for `axum::middleware::from_fn_with_state(validator,
/// require_two_tokens)`, added with `Router::route_layer` (so the route's
/// parameters are known): refuses the request, or lets it through with its
/// [`Authorized`] in the request extensions (where the extractor finds it).
pub async fn require_two_tokens(
    State(validator): State<Validator>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    match authorize_parts(&validator, &mut parts).await {
        Ok(ok) => {
            parts.extensions.insert(ok);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(denied) => denied.into_response(),
    }
}
