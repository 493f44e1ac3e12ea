//! Where the credential's settings come from: the `AZURE_*` variables every
//! Azure SDK reads, or the global flags that override them, and the
//! credential built from them.
//!
//! Secrets (`AZURE_CLIENT_SECRET`, `AZURE_CLIENT_CERTIFICATE_PASSWORD`) are
//! read from the environment only: on a command line they would show in `ps`
//! and shell history. The Event Hubs and API targets are in `targets`.

use crate::error::CliError;
use clap::Args;
use crosstenant::credential::ManagedIdentity;
use crosstenant::CrossTenantCredential;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The environment and exit codes, shown after `--help`.
pub(crate) const ENVIRONMENT_HELP: &str = "\
Environment (the names every Azure SDK reads):
  AZURE_TENANT_ID                    the RESOURCE OWNER's tenant (GUID or verified domain)
  AZURE_CLIENT_ID                    the partner app's client id
  AZURE_CLIENT_SECRET                its client secret, or
  AZURE_CLIENT_CERTIFICATE_PATH      a PEM or PFX certificate (+ AZURE_CLIENT_CERTIFICATE_PASSWORD), or
  AZURE_FEDERATED_TOKEN_FILE         a federated assertion file (workload identity), or
  CROSSTENANT_MANAGED_IDENTITY       secretless: the partner's managed identity as the proof,
                                     `system` | `client_id=<guid>` | `object_id=<guid>` |
                                     `resource_id=<ARM id>` (reads IDENTITY_ENDPOINT/IDENTITY_HEADER
                                     on App Service, else IMDS), or
  CROSSTENANT_GITHUB_OIDC=1          secretless: the GitHub Actions job's OIDC token (reads
                                     ACTIONS_ID_TOKEN_REQUEST_URL/ACTIONS_ID_TOKEN_REQUEST_TOKEN)
  AZURE_AUTHORITY_HOST               the authority (default https://login.microsoftonline.com/)
  SSL_CERT_FILE                      extra trusted roots (PEM), e.g. the sandbox CA
Secrets are read from the environment only: on a command line they would show in `ps` and
shell history.

Exit codes: 0 success, 1 an operation or check failed, 2 invalid command line or configuration.";

/// Where the credential's settings come from: a flag, else the usual
/// environment variable. Secrets have no flag (see `ENVIRONMENT_HELP`).
#[derive(Args)]
pub(crate) struct CredentialArgs {
    /// The resource owner's tenant: directory id or verified domain.
    #[arg(long, global = true, env = "AZURE_TENANT_ID")]
    tenant: Option<String>,
    /// The partner app's client (application) id.
    #[arg(long, global = true, env = "AZURE_CLIENT_ID")]
    client_id: Option<String>,
    /// A PEM (certificate + key) or PFX file to authenticate with.
    #[arg(long, global = true, env = "AZURE_CLIENT_CERTIFICATE_PATH")]
    certificate: Option<PathBuf>,
    /// A file holding a federated assertion, re-read for every token.
    #[arg(long, global = true, env = "AZURE_FEDERATED_TOKEN_FILE")]
    federated_token_file: Option<PathBuf>,
    /// Secretless: the partner's managed identity as the proof: `system`,
    /// `client_id=<guid>`, `object_id=<guid>` or `resource_id=<ARM id>`.
    #[arg(long, global = true, env = "CROSSTENANT_MANAGED_IDENTITY")]
    managed_identity: Option<String>,
    /// Secretless: the GitHub Actions job's OIDC token as the proof.
    #[arg(
        long,
        global = true,
        env = "CROSSTENANT_GITHUB_OIDC",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    github_oidc: bool,
    /// The authority host, e.g. https://login.microsoftonline.us/.
    #[arg(long, global = true, env = "AZURE_AUTHORITY_HOST")]
    authority_host: Option<String>,
    /// Extra trusted root certificates (PEM), added to the platform's.
    #[arg(long, global = true, env = "SSL_CERT_FILE")]
    root_certificates: Option<PathBuf>,
    /// Accept tokens whatever their `aud` (the tenant is still checked): for
    /// a resource whose tokens name it in a way the check cannot tie to the
    /// scope asked for.
    #[arg(long, global = true)]
    no_audience_check: bool,
}

/// Reads an environment variable, treating an empty value as unset (as the
/// library's `from_env` does).
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A flag or environment value, with empty meaning unset.
pub(crate) fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

pub(crate) fn required<'a>(
    value: &'a Option<String>,
    flag: &str,
    variable: Option<&str>,
) -> Result<&'a str, CliError> {
    given(value).ok_or_else(|| {
        CliError::Usage(match variable {
            Some(var) => format!("give {flag} or set {var}"),
            None => format!("give {flag}"),
        })
    })
}

/// How the app authenticates, for messages (never the secret itself).
pub(crate) fn auth_method(config: &CredentialArgs) -> &'static str {
    if env_var("AZURE_CLIENT_SECRET").is_some() {
        "a client secret"
    } else if config.certificate.is_some() {
        "a certificate"
    } else if config.federated_token_file.is_some() {
        "a federated token file"
    } else if given(&config.managed_identity).is_some() {
        "a managed identity (secretless)"
    } else if config.github_oidc {
        "GitHub Actions OIDC (secretless)"
    } else {
        "nothing yet"
    }
}

/// Builds the cross-tenant credential from flags and environment. Every
/// method given is handed to the builder, which insists on exactly one.
pub(crate) fn build_credential(
    config: &CredentialArgs,
) -> Result<Arc<CrossTenantCredential>, CliError> {
    let tenant = required(&config.tenant, "--tenant", Some("AZURE_TENANT_ID"))?;
    let client_id = required(&config.client_id, "--client-id", Some("AZURE_CLIENT_ID"))?;
    let mut builder = CrossTenantCredential::builder()
        .resource_tenant(tenant)
        .client_id(client_id);
    if let Some(secret) = env_var("AZURE_CLIENT_SECRET") {
        builder = builder.client_secret(secret);
    }
    if let Some(path) = &config.certificate {
        let password = env_var("AZURE_CLIENT_CERTIFICATE_PASSWORD").unwrap_or_default();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        builder = match extension.as_deref() {
            Some("pfx" | "p12") => builder.certificate_pfx_file(path, &password),
            _ => builder.certificate_pem_file(path),
        };
    }
    if let Some(path) = &config.federated_token_file {
        builder = builder.federated_token_file(path);
    }
    if let Some(identity) = given(&config.managed_identity) {
        builder = builder.managed_identity(ManagedIdentity::parse(identity)?);
    }
    if config.github_oidc {
        builder = builder.github_actions_oidc();
    }
    if let Some(host) = given(&config.authority_host) {
        builder = builder.authority_host(host);
    }
    if let Some(path) = &config.root_certificates {
        builder = builder.root_certificates_pem(&read_roots(path)?);
    }
    if config.no_audience_check {
        builder = builder.check_audience(false);
    }
    Ok(builder.build()?)
}

pub(crate) fn read_roots(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the trusted roots in {} (SSL_CERT_FILE / --root-certificates): {e}",
            path.display()
        ))
    })
}
