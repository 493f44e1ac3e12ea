//! `crosstenant token`: one token from the resource owner's tenant, shown
//! as its decoded claims (or JSON). The token itself, a bearer credential,
//! is printed only with `--show-token`.

use crate::config::{build_credential, CredentialArgs};
use crate::error::Outcome;
use crate::output::{now_secs, pretty, relative, timestamp};
use clap::Args;
use crosstenant::eventhubs::EVENTHUBS_SCOPE;
use crosstenant::{Error, TokenClaims};
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Args)]
pub(crate) struct TokenArgs {
    /// The scope, `{resource}/.default`.
    #[arg(long, default_value = EVENTHUBS_SCOPE)]
    scope: String,
    /// Print the claims as JSON.
    #[arg(long)]
    json: bool,
    /// Also print the access token itself. It is a bearer credential: anyone
    /// holding it can use it until it expires.
    #[arg(long)]
    show_token: bool,
}

pub(crate) async fn token(config: &CredentialArgs, args: TokenArgs) -> Outcome {
    let credential = build_credential(config)?;
    let token = credential.token(&args.scope).await?;
    let claims = TokenClaims::decode(token.token.secret()).map_err(Error::from)?;
    let now = now_secs();
    if args.json {
        let mut out = json!({
            "scope": args.scope,
            "resource_tenant": credential.resolved_tenant_id().await?,
            "expires_on": token.expires_on.unix_timestamp(),
            "header": {
                "alg": claims.header("alg"),
                "kid": claims.header("kid"),
            },
            "claims": claims.as_map(),
        });
        if args.show_token {
            out["access_token"] = Value::from(token.token.secret());
        }
        println!("{}", pretty(&out));
        return Ok(ExitCode::SUCCESS);
    }

    let show = |v: Option<&str>| v.unwrap_or("-").to_string();
    let roles = claims.roles();
    println!("Token for {}", args.scope);
    println!("  tid    {}  (issuing tenant)", show(claims.tenant_id()));
    println!("  appid  {}  (the partner app)", show(claims.app_id()));
    println!("  aud    {}", show(claims.audience()));
    println!(
        "  oid    {}  (its service principal there)",
        show(claims.object_id())
    );
    println!(
        "  roles  {}",
        if roles.is_empty() {
            "-".to_string()
        } else {
            roles.join(", ")
        }
    );
    println!("  iss    {}", show(claims.issuer()));
    if let Some(iat) = claims.issued_at() {
        println!("  iat    {}", timestamp(iat));
    }
    if let Some(nbf) = claims.not_before() {
        println!("  nbf    {}", timestamp(nbf));
    }
    if let Some(exp) = claims.expires_at() {
        println!("  exp    {}  ({})", timestamp(exp), relative(exp - now));
    }
    if args.show_token {
        println!("\n{}", token.token.secret());
    } else {
        println!("(the token itself is not printed; add --show-token to print it)");
    }
    Ok(ExitCode::SUCCESS)
}
