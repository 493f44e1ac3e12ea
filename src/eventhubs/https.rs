//! The HTTPS transport: Event Hubs' REST API through `azure_core`'s pipeline.
//!
//! `POST https://{ns}/{hub}/messages?timeout=60&api-version=2014-01` (or
//! `/partitions/{id}/messages`) with `Authorization: Bearer <token>`. One
//! event goes as the raw body (`application/atom+xml;type=entry;charset=utf-8`)
//! with `BrokerProperties` and its properties as headers; several go as
//! `application/vnd.microsoft.servicebus.json` batches of at most the size
//! limit. The pipeline pools connections (keep-alive) and retries 408, 429,
//! 5xx and I/O failures with bounded backoff; the crate's one authorization
//! policy ([`crate::http`]'s bearer policy) adds the token and gives a
//! `401 SubCode=40106` (expired) or `40103` (signed with a retired key) one
//! fresh token and one retry, whether the sub-code is in the body or only in
//! the status line's reason phrase. Every batch is planned before the first
//! is sent, so an event that cannot fit fails the call with nothing sent.

use super::{EventHubsError, Prepared, SendOptions, Target, EVENTHUBS_SCOPE};
use crate::credential::TokenSource;
use crate::error::{Error, InvalidInput};
use crate::http::bearer::{subcode_of, BearerPolicy};
use crate::http::HttpSettings;
use azure_core::http::{ClientOptions, Method, Pipeline, Request};
use url::Url;

const SINGLE_CONTENT_TYPE: &str = "application/atom+xml;type=entry;charset=utf-8";
const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.servicebus.json";

/// One planned request: body, headers, and how many events it carries.
struct Planned {
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    count: usize,
}

pub(crate) struct HttpsBackend {
    target: Target,
    credential: TokenSource,
    pipeline: Pipeline,
    base: Url,
}

impl HttpsBackend {
    pub(crate) async fn open(
        target: Target,
        credential: TokenSource,
        endpoint: Option<Url>,
        mut http: HttpSettings,
        client_options: Option<&ClientOptions>,
    ) -> Result<Self, Error> {
        let mut base = format!("https://{}/", target.namespace);
        if let Some(e) = &endpoint {
            // Connect to the endpoint, but keep naming the namespace: TLS is
            // verified for it and the service routes on the Host header.
            let host = e.host_str().unwrap_or_default().to_string();
            let port = e.port_or_known_default().unwrap_or(443);
            let addr = tokio::net::lookup_host((host.as_str(), port))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| {
                    Error::from(InvalidInput::new(
                        "endpoint",
                        e.as_str(),
                        "its host does not resolve; give a reachable https://host:port",
                    ))
                })?;
            http.resolve(&target.namespace, addr);
            base = format!("https://{}:{port}/", target.namespace);
        }
        let base = Url::parse(&base).map_err(|e| {
            Error::from(InvalidInput::new(
                "namespace",
                &target.namespace,
                format!("it does not form a URL ({e})"),
            ))
        })?;
        let pipeline = http.pipeline(
            client_options,
            vec![BearerPolicy::policy(credential.clone(), EVENTHUBS_SCOPE)],
        )?;
        Ok(Self {
            target,
            credential,
            pipeline,
            base,
        })
    }

    fn url(&self, options: &SendOptions) -> Result<Url, Error> {
        let path = match &options.partition_id {
            Some(p) => format!("{}/partitions/{p}/messages", self.target.hub),
            None => format!("{}/messages", self.target.hub),
        };
        let mut url = self.base.join(&path).map_err(|e| {
            Error::from(InvalidInput::new(
                "hub",
                &self.target.hub,
                format!("it does not form a URL path ({e})"),
            ))
        })?;
        url.query_pairs_mut()
            .append_pair("timeout", "60")
            .append_pair("api-version", "2014-01");
        Ok(url)
    }

    pub(crate) async fn send(
        &self,
        events: &[Prepared],
        options: &SendOptions,
    ) -> Result<(), Error> {
        let url = self.url(options)?;
        let limit = self.target.max_message_size;
        // Plan every request before sending any.
        let requests: Vec<Planned> = if events.len() == 1 {
            let e = &events[0].event;
            if e.body.len() as u64 > limit {
                return Err(too_large(0, e.body.len() as u64, limit));
            }
            let mut broker = serde_json::Map::new();
            if let Some(k) = &options.partition_key {
                broker.insert("PartitionKey".into(), k.clone().into());
            }
            if let Some(id) = &e.message_id {
                broker.insert("MessageId".into(), id.clone().into());
            }
            let mut headers = vec![("content-type".to_string(), SINGLE_CONTENT_TYPE.to_string())];
            if !broker.is_empty() {
                headers.push((
                    "brokerproperties".to_string(),
                    serde_json::Value::Object(broker).to_string(),
                ));
            }
            for (k, v) in &e.properties {
                headers.push((k.to_ascii_lowercase(), v.clone()));
            }
            vec![Planned {
                body: e.body.clone(),
                headers,
                count: 1,
            }]
        } else {
            self.plan_batches(events, options)?
        };
        let total = events.len();
        let mut accepted = 0;
        for Planned {
            body,
            headers,
            count,
        } in requests
        {
            if let Err(e) = self.post(&url, &body, &headers).await {
                return Err(Error::EventHubs(Box::new(if accepted == 0 {
                    e
                } else {
                    EventHubsError::NotAccepted {
                        accepted,
                        total,
                        cause: Box::new(e),
                    }
                })));
            }
            accepted += count;
        }
        Ok(())
    }

    fn plan_batches(
        &self,
        events: &[Prepared],
        options: &SendOptions,
    ) -> Result<Vec<Planned>, Error> {
        let limit = self.target.max_message_size as usize;
        let mut items = Vec::with_capacity(events.len());
        for (index, p) in events.iter().enumerate() {
            let e = &p.event;
            let body = std::str::from_utf8(&e.body).map_err(|_| {
                Error::from(InvalidInput::new(
                    "event body",
                    &format!("event {index} ({} bytes)", e.body.len()),
                    "the HTTPS batch format carries text bodies only; send binary events over \
                     AMQP (Transport::Amqp) or one at a time",
                ))
            })?;
            let mut item = serde_json::Map::new();
            item.insert("Body".into(), body.into());
            if !e.properties.is_empty() {
                item.insert(
                    "UserProperties".into(),
                    serde_json::to_value(&e.properties).unwrap_or_default(),
                );
            }
            let mut broker = serde_json::Map::new();
            if let Some(k) = &options.partition_key {
                broker.insert("PartitionKey".into(), k.clone().into());
            }
            if let Some(id) = &e.message_id {
                broker.insert("MessageId".into(), id.clone().into());
            }
            if !broker.is_empty() {
                item.insert("BrokerProperties".into(), broker.into());
            }
            let encoded = serde_json::Value::Object(item).to_string().into_bytes();
            // `[` + item + `]`: the smallest batch that holds it.
            if encoded.len() + 2 > limit {
                return Err(too_large(index, encoded.len() as u64 + 2, limit as u64));
            }
            items.push(encoded);
        }
        let headers = vec![("content-type".to_string(), BATCH_CONTENT_TYPE.to_string())];
        let mut out = Vec::new();
        let mut body = vec![b'['];
        let mut count = 0;
        for item in items {
            if count > 0 && body.len() + 1 + item.len() + 1 > limit {
                body.push(b']');
                out.push(Planned {
                    body: std::mem::replace(&mut body, vec![b'[']),
                    headers: headers.clone(),
                    count,
                });
                count = 0;
            }
            if count > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&item);
            count += 1;
        }
        body.push(b']');
        out.push(Planned {
            body,
            headers,
            count,
        });
        Ok(out)
    }

    /// One request; the bearer policy adds the token and refreshes it once.
    async fn post(
        &self,
        url: &Url,
        body: &[u8],
        headers: &[(String, String)],
    ) -> Result<(), EventHubsError> {
        let mut request = Request::new(url.clone(), Method::Post);
        for (k, v) in headers {
            request.insert_header(k.clone(), v.clone());
        }
        request.set_body(body.to_vec());
        let response = crate::http::send_unchecked(&self.pipeline, &mut request)
            .await
            .map_err(|e| {
                // The bearer policy's token failure comes back as ours.
                if let Some(ours) = crate::Error::from_azure(&e) {
                    return self.target.error(
                        None,
                        format!("no token for Event Hubs: {ours}"),
                        ours.is_transient(),
                    );
                }
                EventHubsError::Service {
                    namespace: self.target.namespace.clone(),
                    hub: self.target.hub.clone(),
                    status: None,
                    detail: format!("the request did not complete: {}", crate::error::chain(&e)),
                    transient: true,
                    cause: Some(crate::error::Cause::new(e)),
                }
            })?;
        let status = u16::from(response.status());
        if (200..300).contains(&status) {
            return Ok(());
        }
        let reason = response
            .headers()
            .get_optional_with(&crate::http::REASON_PHRASE, |v| {
                Ok::<String, std::convert::Infallible>(v.as_str().to_string())
            })
            .ok()
            .flatten();
        let mut detail = detail_of(response.body());
        let subcode = subcode_of(&detail, reason.as_deref());
        if detail.trim().is_empty() {
            // The seed's form: `401 SubCode=40100: Unauthorized`, empty
            // body. Quote the status line, the only place that said it.
            detail = match &reason {
                Some(r) => format!("{status} {}", crate::error::shorten_to(r, 600)),
                None => format!("HTTP {status} with an empty body"),
            };
        }
        Err(self.explain(status, subcode, detail).await)
    }

    async fn explain(&self, status: u16, subcode: Option<u32>, detail: String) -> EventHubsError {
        let t = &self.target;
        match (status, subcode) {
            (401, Some(40100)) | (401, None) => {
                let (token_tenant, app_id) = self.credential.token_identity(EVENTHUBS_SCOPE).await;
                EventHubsError::Unauthorized {
                    namespace: t.namespace.clone(),
                    hub: t.hub.clone(),
                    token_tenant,
                    app_id,
                    detail,
                }
            }
            (401, Some(code)) => EventHubsError::TokenRejected {
                namespace: t.namespace.clone(),
                subcode: code,
                hint: EventHubsError::subcode_hint(code).into(),
                detail,
            },
            (403, _) => EventHubsError::Forbidden {
                namespace: t.namespace.clone(),
                hub: t.hub.clone(),
                detail,
            },
            (404, _) => EventHubsError::NotFound {
                namespace: t.namespace.clone(),
                hub: t.hub.clone(),
                detail,
            },
            (413, _) => EventHubsError::PayloadTooLarge {
                namespace: t.namespace.clone(),
                detail,
            },
            (503, _) => EventHubsError::ServerBusy {
                namespace: t.namespace.clone(),
                detail,
            },
            (s, _) => t.error(Some(s), detail, s == 408 || s == 429 || s >= 500),
        }
    }
}

fn too_large(index: usize, size: u64, limit: u64) -> Error {
    Error::EventHubs(Box::new(EventHubsError::TooLarge { index, size, limit }))
}

/// The text of `<Error><Code/><Detail>…</Detail></Error>`, or the body.
fn detail_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let detail = match (text.find("<Detail>"), text.find("</Detail>")) {
        (Some(a), Some(b)) if b > a => &text[a + "<Detail>".len()..b],
        _ => text.as_ref(),
    };
    crate::error::shorten_to(
        &detail
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
        600,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_detail_and_subcode_are_read() {
        let body = b"<Error><Code>401</Code><Detail>SubCode=40100: Unauthorized : x &amp; y</Detail></Error>";
        let d = detail_of(body);
        assert!(d.starts_with("SubCode=40100: Unauthorized : x & y"), "{d}");
        assert_eq!(subcode_of(&d, None), Some(40100));
    }
}
