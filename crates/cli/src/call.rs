//! `crosstenant call`: one aggregator call on behalf of a client (the API
//! token plus the secondary token), printing the JSON answer or the API's
//! reason for refusing.

use crate::config::{build_credential, CredentialArgs};
use crate::error::{CliError, Outcome};
use crate::output::pretty;
use crate::targets::ApiArgs;
use clap::{Args, ValueEnum};
use crosstenant::Error;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Args)]
pub(crate) struct CallArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The HTTP method.
    #[arg(long, value_enum, ignore_case = true, default_value = "GET")]
    method: MethodArg,
    /// The JSON body, for PUT and POST.
    #[arg(long)]
    body: Option<String>,
    /// The path under /api/{client}/, e.g. `data`.
    path: String,
}

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "UPPER")]
pub(crate) enum MethodArg {
    Get,
    Put,
    Post,
    Delete,
}

pub(crate) async fn call(config: &CredentialArgs, args: CallArgs) -> Outcome {
    let body = match (&args.method, &args.body) {
        (MethodArg::Put | MethodArg::Post, None) => {
            return Err(CliError::Usage("PUT and POST need --body JSON".into()))
        }
        (_, Some(text)) => Some(
            serde_json::from_str::<Value>(text)
                .map_err(|e| CliError::Usage(format!("--body is not JSON: {e}")))?,
        ),
        (_, None) => None,
    };
    let credential = build_credential(config)?;
    let Some((api, client)) = args.api.client(credential)? else {
        return Err(CliError::Usage(
            "give --api and --api-scope (or set AGGREGATOR_API_URL and AGGREGATOR_API_SCOPE)"
                .into(),
        ));
    };
    let on_behalf = api.on_behalf_of(&client)?;
    let body = body.unwrap_or(Value::Null);
    let result: Result<Value, Error> = match args.method {
        MethodArg::Get => on_behalf.get(&args.path).await,
        MethodArg::Put => on_behalf.put(&args.path, &body).await,
        MethodArg::Post => on_behalf.post(&args.path, &body).await,
        MethodArg::Delete => on_behalf.delete(&args.path).await,
    };
    match result {
        Ok(answer) => {
            println!("{}", pretty(&answer));
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Aggregator(e)) => {
            match (e.status(), e.forbid_reason()) {
                (Some(status), Some(reason)) => {
                    eprintln!("the API answered {status}; ForbidReason: {reason}")
                }
                (Some(status), None) => eprintln!("the API answered {status}"),
                _ => {}
            }
            Err(CliError::Failed(e.to_string()))
        }
        Err(other) => Err(other.into()),
    }
}
