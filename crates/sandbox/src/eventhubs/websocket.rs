//! Event Hubs' AMQP over WebSockets, as the sandbox serves it: for clients
//! behind firewalls that open only port 443, and for clients that choose it
//! (azure-eventhub uses it by default when given a custom endpoint).
//!
//! The service's binding: `wss://{namespace}/$servicebus/websocket`, TLS,
//! then an HTTP/1.1 upgrade that agrees a WebSocket subprotocol, then the
//! same AMQP 1.0 byte stream as on port 5671, carried in binary WebSocket
//! messages (Microsoft's "AMQP 1.0 in Azure Service Bus and Event Hubs
//! protocol guide": AMQP over WebSockets on port 443). Two subprotocol names
//! are in use: `AMQPWSB10`, which Microsoft's clients offer (pyamqp's
//! `AMQP_WS_SUBPROTOCOL`), and `amqp`, the OASIS "AMQP WebSocket Binding"
//! name that fe2o3-amqp-ws (and so azure_core_amqp) offers. The listener
//! agrees whichever the client offers, `AMQPWSB10` first, and refuses an
//! upgrade that offers neither or asks for another path. azure_core_amqp
//! asks for the path with a trailing `/`; both spellings are the same path.
//!
//! What arrives is handed to the AMQP listener's connection handler, so
//! WebSocket clients get exactly what TLS clients get: SASL ANONYMOUS, CBS,
//! `$management` and sender links.
//!
//! Not for: plain `ws://` (the service has none), proxies, per-message
//! compression.

use super::amqp::serve_connection;
use super::EhState;
use futures_util::{Sink, Stream};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{self, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

/// The path of the AMQP WebSocket endpoint on a namespace.
pub const WEBSOCKET_PATH: &str = "/$servicebus/websocket";

/// The subprotocols the listener agrees, in order of preference.
pub const SUBPROTOCOLS: &[&str] = &["AMQPWSB10", "amqp"];

/// The running WebSocket listener.
pub(crate) struct WebSocketListener {
    pub(crate) addr: SocketAddr,
    cancel: CancellationToken,
}

impl Drop for WebSocketListener {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl WebSocketListener {
    pub(crate) async fn start(state: Arc<EhState>) -> io::Result<Self> {
        let cancel = CancellationToken::new();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let config = state
            .shared
            .ca
            .server_config(&[b"http/1.1"])
            .map_err(io::Error::other)?;
        let tls = tokio_rustls::TlsAcceptor::from(config);
        {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        _ = cancel.cancelled() => break,
                        a = listener.accept() => a,
                    };
                    let Ok((stream, _)) = accepted else { continue };
                    let (state, tls, cancel) = (state.clone(), tls.clone(), cancel.clone());
                    tokio::spawn(async move {
                        let tls_stream = match tls.accept(stream).await {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::debug!(error = %e, "sandbox WebSocket TLS handshake failed");
                                return;
                            }
                        };
                        match tokio_tungstenite::accept_hdr_async(tls_stream, upgrade).await {
                            Ok(ws) => {
                                serve_connection(state, WebSocketBytes::new(ws), cancel).await
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "sandbox WebSocket upgrade refused")
                            }
                        }
                    });
                }
            });
        }
        Ok(Self { addr, cancel })
    }

    /// `wss://127.0.0.1:{port}/$servicebus/websocket`.
    pub(crate) fn url(&self) -> url::Url {
        url::Url::parse(&format!("wss://{}{WEBSOCKET_PATH}", self.addr))
            .unwrap_or_else(|_| unreachable!("a socket address is a valid authority"))
    }
}

/// The subprotocol to agree for the offers in `Sec-WebSocket-Protocol`
/// headers (each a comma-separated list), if any is one of [`SUBPROTOCOLS`].
pub fn choose_subprotocol<'a>(offers: impl Iterator<Item = &'a str>) -> Option<&'static str> {
    let offered: Vec<&str> = offers.flat_map(|h| h.split(',')).map(str::trim).collect();
    SUBPROTOCOLS
        .iter()
        .find(|p| offered.iter().any(|o| o.eq_ignore_ascii_case(p)))
        .copied()
}

fn refuse(status: StatusCode, why: String) -> ErrorResponse {
    let mut response = http::Response::new(Some(why));
    *response.status_mut() = status;
    response
}

/// Checks the upgrade request's path and agrees a subprotocol.
#[allow(clippy::result_large_err)] // the shape tungstenite's callback requires
fn upgrade(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let path = request.uri().path();
    if path.trim_end_matches('/') != WEBSOCKET_PATH {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            format!("The sandbox serves AMQP over WebSockets at {WEBSOCKET_PATH}, not at {path}."),
        ));
    }
    let offers = request
        .headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let Some(chosen) = choose_subprotocol(offers) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "Offer the WebSocket subprotocol {} in Sec-WebSocket-Protocol.",
                SUBPROTOCOLS.join(" or ")
            ),
        ));
    };
    response.headers_mut().insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(chosen),
    );
    Ok(response)
}

/// The byte stream carried in a WebSocket's binary messages: what the AMQP
/// connection handler reads and writes. Each write goes out as one binary
/// message; reads run across message boundaries, as AMQP frames may.
pub(crate) struct WebSocketBytes<S> {
    ws: WebSocketStream<S>,
    /// The binary message being read, and how far.
    reading: Bytes,
}

impl<S> std::fmt::Debug for WebSocketBytes<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketBytes").finish_non_exhaustive()
    }
}

impl<S> WebSocketBytes<S> {
    pub(crate) fn new(ws: WebSocketStream<S>) -> Self {
        Self {
            ws,
            reading: Bytes::new(),
        }
    }
}

fn io_error(e: WsError) -> io::Error {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::NotConnected.into(),
        WsError::Io(e) => e,
        other => io::Error::other(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WebSocketBytes<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.reading.is_empty() {
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(bytes))) => this.reading = bytes,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "AMQP over WebSockets is carried in binary messages, not text",
                    )))
                }
                // tungstenite answers pings itself; a close ends the stream.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
        let n = buf.remaining().min(this.reading.len());
        buf.put_slice(&this.reading.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WebSocketBytes<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(io_error)?;
        Pin::new(&mut this.ws)
            .start_send(Message::binary(buf.to_vec()))
            .map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_flush(cx)
            .map_err(io_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_close(cx)
            .map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsofts_subprotocol_is_preferred_and_the_oasis_name_is_accepted() {
        assert_eq!(
            choose_subprotocol(["amqp, AMQPWSB10"].into_iter()),
            Some("AMQPWSB10")
        );
        assert_eq!(choose_subprotocol(["amqp"].into_iter()), Some("amqp"));
        assert_eq!(choose_subprotocol(["mqtt", "chat"].into_iter()), None);
        assert_eq!(choose_subprotocol(std::iter::empty()), None);
    }

    fn request(path: &str, protocol: Option<&str>) -> Request {
        let mut r = http::Request::builder().uri(path);
        if let Some(p) = protocol {
            r = r.header(http::header::SEC_WEBSOCKET_PROTOCOL, p);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn the_upgrade_needs_the_servicebus_path_and_an_amqp_subprotocol() {
        let ok = upgrade(
            &request("/$servicebus/websocket", Some("AMQPWSB10")),
            Response::default(),
        )
        .unwrap();
        assert_eq!(
            ok.headers()[http::header::SEC_WEBSOCKET_PROTOCOL],
            "AMQPWSB10"
        );
        // azure_core_amqp's spelling, with a trailing slash.
        assert!(upgrade(
            &request("/$servicebus/websocket/", Some("amqp")),
            Response::default()
        )
        .is_ok());
        let wrong_path =
            upgrade(&request("/", Some("AMQPWSB10")), Response::default()).expect_err("wrong path");
        assert_eq!(wrong_path.status(), StatusCode::NOT_FOUND);
        let no_protocol = upgrade(
            &request("/$servicebus/websocket", None),
            Response::default(),
        )
        .expect_err("no subprotocol");
        assert_eq!(no_protocol.status(), StatusCode::BAD_REQUEST);
        assert!(no_protocol.body().as_deref().unwrap().contains("AMQPWSB10"));
    }
}
