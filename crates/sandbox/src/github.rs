//! A GitHub Actions-style OIDC issuer: the token a workflow job gets from
//! `ACTIONS_ID_TOKEN_REQUEST_URL`, and the discovery document and JWKS a
//! relying party (here Entra's federated credential check) verifies it with.
//!
//! Protocol (GitHub's "About security hardening with OpenID Connect" and
//! the actions toolkit's `core.getIDToken`): `GET
//! {ACTIONS_ID_TOKEN_REQUEST_URL}&audience={audience}` with `Authorization:
//! Bearer {ACTIONS_ID_TOKEN_REQUEST_TOKEN}` answers `{"value": "<jwt>"}`;
//! without `audience` the token's `aud` is the repository owner's URL
//! (`https://github.com/{owner}`). A wrong or missing request token gets
//! 401. The JWT is RS256 with `kid` and `x5t`, its claims shaped like
//! GitHub's: `iss` (the sandbox issuer URL, standing for
//! `https://token.actions.githubusercontent.com`), `sub`
//! (`repo:{owner}/{repo}:ref:{ref}`, or `…:environment:{name}` for a job
//! bound to an environment), `aud`, `jti`, `iat`/`nbf`/`exp` (five
//! minutes), `repository`, `repository_owner`, `ref`, `ref_type`, `sha`,
//! `workflow`, `workflow_ref`, `job_workflow_ref`, `event_name`, `run_id`,
//! `run_number`, `run_attempt`, `actor`, `runner_environment`.
//!
//! The issuer has its own signing key (not Entra's), its own
//! `/.well-known/openid-configuration` and JWKS at `/.well-known/jwks`, on
//! its own HTTPS listener (the sandbox CA's certificate).

use super::jwt::{now_secs, TokenIssuer};
use super::tls::HttpsServer;
use super::Shared;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use uuid::Uuid;

/// Seconds a GitHub Actions OIDC token is valid.
const LIFETIME_SECS: i64 = 300;

/// The workflow run whose job asks for tokens: what its claims say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubJob {
    /// `owner/repo`.
    pub repository: String,
    /// `refs/heads/main`.
    pub git_ref: String,
    /// The workflow file, `.github/workflows/deploy.yml`.
    pub workflow_path: String,
    /// The environment the job is bound to, if any (changes `sub`).
    pub environment: Option<String>,
    /// `push`, `workflow_dispatch`…
    pub event_name: String,
}

impl Default for GitHubJob {
    fn default() -> Self {
        Self {
            repository: "fabrikam/telemetry".into(),
            git_ref: "refs/heads/main".into(),
            workflow_path: ".github/workflows/deploy.yml".into(),
            environment: None,
            event_name: "push".into(),
        }
    }
}

impl GitHubJob {
    /// The `sub` GitHub gives this job's tokens: `repo:{repo}:environment:{env}`
    /// for a job bound to an environment, else `repo:{repo}:ref:{ref}`.
    pub fn subject(&self) -> String {
        match &self.environment {
            Some(env) => format!("repo:{}:environment:{env}", self.repository),
            None => format!("repo:{}:ref:{}", self.repository, self.git_ref),
        }
    }
}

struct GhState {
    keys: TokenIssuer,
    issuer_url: OnceLock<String>,
    request_token: String,
    job: RwLock<GitHubJob>,
    plan: String,
    job_id: String,
    requests: AtomicU64,
    issued: AtomicU64,
}

/// The running GitHub Actions OIDC issuer.
pub struct GitHubActionsOidc {
    server: HttpsServer,
    state: Arc<GhState>,
}

impl std::fmt::Debug for GitHubActionsOidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubActionsOidc")
            .field("issuer", &self.issuer())
            .finish_non_exhaustive()
    }
}

impl GitHubActionsOidc {
    /// Starts the issuer on its own loopback HTTPS port, with a fresh
    /// signing key and request token.
    pub async fn start(shared: &Shared) -> std::io::Result<Self> {
        let keys = TokenIssuer::new().map_err(std::io::Error::other)?;
        let state = Arc::new(GhState {
            keys,
            issuer_url: OnceLock::new(),
            request_token: format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
            job: RwLock::new(GitHubJob::default()),
            plan: Uuid::new_v4().to_string(),
            job_id: Uuid::new_v4().to_string(),
            requests: AtomicU64::new(0),
            issued: AtomicU64::new(0),
        });
        let router = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(openid_configuration),
            )
            .route("/.well-known/jwks", get(jwks))
            .route(
                "/_apis/distributedtask/hubs/build/plans/{plan}/jobs/{job}/idtoken",
                get(id_token),
            )
            .with_state(state.clone());
        let server = super::tls::serve_https(&shared.ca, router).await?;
        let url = server.url().as_str().trim_end_matches('/').to_string();
        let _ = state.issuer_url.set(url);
        Ok(Self { server, state })
    }

    /// The issuer URL (`iss` of its tokens, no trailing slash, as GitHub's
    /// `https://token.actions.githubusercontent.com`): what a federated
    /// credential names.
    pub fn issuer(&self) -> String {
        self.state.issuer_url.get().cloned().unwrap_or_default()
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_URL` of the current job (it already carries
    /// `?api-version=2.0`; clients append `&audience=…`).
    pub fn request_url(&self) -> String {
        format!(
            "{}_apis/distributedtask/hubs/build/plans/{}/jobs/{}/idtoken?api-version=2.0",
            self.server.url(),
            self.state.plan,
            self.state.job_id
        )
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`: the bearer token the request URL
    /// requires (a sandbox value, worthless outside it).
    pub fn request_token(&self) -> &str {
        &self.state.request_token
    }

    /// The job whose tokens are issued.
    pub fn job(&self) -> GitHubJob {
        self.state
            .job
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the job (another repository, branch or environment).
    pub fn set_job(&self, job: GitHubJob) {
        *self.state.job.write().unwrap_or_else(|e| e.into_inner()) = job;
    }

    /// The `sub` of the current job's tokens.
    pub fn subject(&self) -> String {
        self.job().subject()
    }

    /// Token requests received (including refused ones).
    pub fn token_requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Tokens issued.
    pub fn tokens_issued(&self) -> u64 {
        self.state.issued.load(Ordering::Relaxed)
    }

    /// The issuer's keys (to rotate them, or to verify a token).
    pub fn keys(&self) -> &TokenIssuer {
        &self.state.keys
    }
}

async fn openid_configuration(State(st): State<Arc<GhState>>) -> Response {
    let issuer = st.issuer_url.get().cloned().unwrap_or_default();
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks"),
        "subject_types_supported": ["public", "pairwise"],
        "response_types_supported": ["id_token"],
        "claims_supported": [
            "sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "sha", "repository",
            "repository_owner", "run_id", "run_number", "run_attempt", "actor", "workflow",
            "workflow_ref", "job_workflow_ref", "event_name", "ref_type", "environment",
            "runner_environment"
        ],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
    }))
    .into_response()
}

async fn jwks(State(st): State<Arc<GhState>>) -> Response {
    Json(st.keys.jwks()).into_response()
}

async fn id_token(
    State(st): State<Arc<GhState>>,
    Path((plan, _job)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let refuse = |status: StatusCode, message: &str| {
        (status, Json(json!({ "message": message }))).into_response()
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    if presented != Some(st.request_token.as_str()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Bad credentials: send ACTIONS_ID_TOKEN_REQUEST_TOKEN as a Bearer token.",
        );
    }
    if plan != st.plan {
        return refuse(StatusCode::NOT_FOUND, "No such workflow run.");
    }
    let job = st.job.read().unwrap_or_else(|e| e.into_inner()).clone();
    let owner = job
        .repository
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let audience = q
        .get("audience")
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| format!("https://github.com/{owner}"));
    let now = now_secs();
    let workflow_ref = format!("{}/{}@{}", job.repository, job.workflow_path, job.git_ref);
    let mut claims = json!({
        "jti": Uuid::new_v4().to_string(),
        "sub": job.subject(),
        "aud": audience,
        "ref": job.git_ref,
        "ref_type": if job.git_ref.starts_with("refs/tags/") { "tag" } else { "branch" },
        "sha": "0000000000000000000000000000000000000000",
        "repository": job.repository,
        "repository_owner": owner,
        "repository_visibility": "private",
        "run_id": "1",
        "run_number": "1",
        "run_attempt": "1",
        "actor": owner,
        "workflow": job.workflow_path.rsplit('/').next().unwrap_or_default(),
        "workflow_ref": workflow_ref,
        "job_workflow_ref": workflow_ref,
        "event_name": job.event_name,
        "runner_environment": "github-hosted",
        "iss": st.issuer_url.get().cloned().unwrap_or_default(),
        "iat": now,
        "nbf": now,
        "exp": now + LIFETIME_SECS,
    });
    if let (Some(env), Some(c)) = (&job.environment, claims.as_object_mut()) {
        c.insert("environment".into(), json!(env));
    }
    match st.keys.sign(&claims) {
        Ok(jwt) => {
            st.issued.fetch_add(1, Ordering::Relaxed);
            Json(json!({ "count": 1, "value": jwt })).into_response()
        }
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("signing failed: {e}"),
        ),
    }
}
