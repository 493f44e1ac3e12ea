//! Which client a call is for, and the URL it may go to.
//!
//! The binding promise of the two-token scheme lives here: a client's
//! secondary token may only travel on a request whose path names that
//! client. URLs are therefore never built from strings: the client id must be
//! exactly one plain path segment, and a relative path is split into
//! segments that are each checked and percent-encoded by `url`, so neither
//! can climb out of `/api/{clientId}/` or add a query or fragment.
//!
//! This module decides nothing about tokens or HTTP.

use crate::error::{Error, InvalidInput};
use url::Url;

/// The longest client id accepted; real ones (names, GUIDs) are far shorter.
const MAX_CLIENT_ID: usize = 128;

/// A client the aggregator acts for: the id that names it in the API's path
/// (`/api/{path_id}/…`) and the App ID URI its secondary token is requested
/// for (scope `{app_id_uri}/.default`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamedClient {
    path_id: String,
    app_id_uri: String,
    /// `{app_id_uri}/.default`, made once: every call asks for it.
    scope: String,
}

impl NamedClient {
    /// A client whose path id and App ID URI are given separately, for App
    /// ID URIs the path id cannot be derived from (such as
    /// `https://contoso.com/clientXYZ`).
    ///
    /// An `api://{name}` URI must name the same client as the path
    /// (`api://clientXYZ` only with path id `clientXYZ`), so a slip cannot
    /// send client X's token on client Y's path; `api://{application id}`
    /// and other URIs are taken as given.
    pub fn new(path_id: &str, app_id_uri: &str) -> Result<Self, Error> {
        check_client_id(path_id)?;
        let app_id_uri = app_id_uri_of("client App ID URI", app_id_uri)?;
        if let Some(name) = app_id_uri.strip_prefix("api://") {
            if !name.contains('/')
                && !crate::tenant::is_guid(name)
                && !name.eq_ignore_ascii_case(path_id)
            {
                return Err(InvalidInput::new(
                    "client App ID URI",
                    &app_id_uri,
                    format!(
                        "it names client {name}, not client {path_id} of the path; the \
                         secondary token for one client must never travel on another's path"
                    ),
                )
                .into());
            }
        }
        Ok(Self {
            path_id: path_id.to_string(),
            scope: format!("{app_id_uri}/.default"),
            app_id_uri,
        })
    }

    /// The usual mapping, in both directions between the API's path and
    /// Entra's App ID URI convention:
    ///
    /// - `api://clientXYZ` → path id `clientXYZ`, App ID URI `api://clientXYZ`;
    /// - `clientXYZ` → the same (a bare id names the App ID URI `api://{id}`);
    /// - a client (application) id GUID `g` → path id `g`, App ID URI
    ///   `api://g`, Entra's default App ID URI for an app.
    ///
    /// An App ID URI with a path, or of another scheme, is refused: use
    /// [`NamedClient::new`] for it.
    pub fn parse(client: &str) -> Result<Self, Error> {
        let trimmed = client.trim_end_matches('/');
        if let Some(rest) = trimmed.strip_prefix("api://") {
            if rest.contains('/') {
                return Err(InvalidInput::new(
                    "client",
                    client,
                    "this App ID URI has a path, so the client id in the API's path cannot be \
                     derived from it; use NamedClient::new(path_id, app_id_uri) and \
                     on_behalf_of_client",
                )
                .into());
            }
            return Self::new(rest, trimmed);
        }
        if client.contains("://") {
            return Err(InvalidInput::new(
                "client",
                client,
                "only `api://{id}` App ID URIs map to a path id by themselves; use \
                 NamedClient::new(path_id, app_id_uri) and on_behalf_of_client",
            )
            .into());
        }
        check_client_id(client)?;
        Ok(Self {
            path_id: client.to_string(),
            app_id_uri: format!("api://{client}"),
            scope: format!("api://{client}/.default"),
        })
    }

    /// The id in the API's path.
    pub fn path_id(&self) -> &str {
        &self.path_id
    }

    /// The App ID URI its secondary token is for.
    pub fn app_id_uri(&self) -> &str {
        &self.app_id_uri
    }

    /// The secondary token's scope, `{app_id_uri}/.default`.
    pub fn scope(&self) -> &str {
        &self.scope
    }
}

/// Checks that a client id is exactly one plain path segment. An allow-list
/// (ASCII letters, digits, `-`, `_`, `.`, `~`: RFC 3986's unreserved set)
/// rather than a deny-list, so no encoding trick or exotic character can
/// move the request to another client's path; `.`/`..` and anything holding
/// `..` are refused as servers and proxies normalise them away.
pub(crate) fn check_client_id(id: &str) -> Result<(), Error> {
    let refuse = |why: &str| -> Result<(), Error> {
        Err(InvalidInput::new(
            "client id",
            id,
            format!(
                "{why}; a client id is one path segment of letters, digits, `-`, `_`, `.` or \
                 `~`, such as clientXYZ or an application id GUID"
            ),
        )
        .into())
    };
    if id.is_empty() {
        return refuse("it is empty");
    }
    if id.len() > MAX_CLIENT_ID {
        return refuse("it is longer than 128 characters");
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')))
    {
        let why = match c {
            '/' | '\\' => "it contains a path separator, which would move the request to \
                           another path"
                .to_string(),
            '?' | '#' => "it contains `?` or `#`, which would cut the path and start a query or \
                          fragment"
                .to_string(),
            '%' => "it contains `%`, which servers decode into other characters".to_string(),
            c if c.is_whitespace() || c.is_control() => {
                "it contains whitespace or a control character".to_string()
            }
            c => format!("it contains `{c}`"),
        };
        return refuse(&why);
    }
    if id.contains("..") || id == "." {
        return refuse(
            "it is or contains a dot segment (`.` or `..`), which servers resolve to another path",
        );
    }
    Ok(())
}

/// Checks an App ID URI (or a bare application id) and returns it without a
/// trailing `/` or `/.default`, so `{uri}/.default` is the scope.
pub(crate) fn app_id_uri_of(field: &str, uri: &str) -> Result<String, Error> {
    let fix = "give the App ID URI as shown on the app registration's \"Expose an API\" page, \
               such as api://secure-api (or the application id GUID)";
    let trimmed = uri.trim();
    let base = trimmed
        .strip_suffix("/.default")
        .unwrap_or(trimmed)
        .trim_end_matches('/');
    if base.is_empty()
        || trimmed != uri
        || base.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(InvalidInput::new(field, uri, fix).into());
    }
    if crate::tenant::is_guid(base) {
        return Ok(base.to_ascii_lowercase());
    }
    match Url::parse(base) {
        Ok(u) if u.query().is_none() && u.fragment().is_none() && u.has_host() => {
            Ok(base.to_string())
        }
        _ => Err(InvalidInput::new(field, uri, fix).into()),
    }
}

/// A client's place in the API, `{base}/api/{client}`, built once per
/// [`ClientHandle`](super::ClientHandle) so a call only appends its own
/// segments and compares strings.
#[derive(Debug, Clone)]
pub(crate) struct ClientPath {
    root: Url,
    client: String,
}

impl ClientPath {
    pub(crate) fn new(base: &Url, client: &str) -> Result<Self, Error> {
        check_client_id(client)?;
        let mut root = base.clone();
        {
            let mut path = root.path_segments_mut().map_err(|()| {
                Error::from(InvalidInput::new(
                    "api_base_url",
                    base.as_str(),
                    "it cannot carry a path; give an https:// URL",
                ))
            })?;
            // The base was stored with a trailing `/`; drop that empty
            // segment before appending.
            path.pop_if_empty();
            path.push("api").push(client);
        }
        Ok(Self {
            root,
            client: client.to_string(),
        })
    }

    /// `{base}/api/{client}/{relative}`. `relative` is a `/`-separated list
    /// of literal segments, each percent-encoded; it may be empty (the
    /// client's resource itself) but may not start with `/`, hold an empty,
    /// `.` or `..` segment, a `?` or `#`, a control character, or be an
    /// absolute URL.
    pub(crate) fn url(&self, relative: &str) -> Result<Url, Error> {
        let refuse = |why: &str| -> Result<Url, Error> {
            Err(InvalidInput::new(
                "path",
                relative,
                format!(
                    "{why}; paths are relative to /api/{}/ and name segments literally, \
                     such as `data` or `files/report 1.json`",
                    self.client
                ),
            )
            .into())
        };
        if relative.starts_with('/') {
            return refuse("it starts with `/`, as if absolute");
        }
        if relative.contains("://") || Url::parse(relative).is_ok() {
            return refuse("it is an absolute URL");
        }
        if relative.contains(['?', '#']) {
            return refuse("it holds `?` or `#`; the client sends no query or fragment");
        }
        if relative.chars().any(char::is_control) {
            return refuse("it holds a control character");
        }
        let mut url = self.root.clone();
        if !relative.is_empty() {
            for segment in relative.split('/') {
                if segment.is_empty() {
                    return refuse("it holds an empty segment (`//` or a trailing `/`)");
                }
                if matches!(segment, "." | "..") {
                    return refuse(
                        "it holds a `.` or `..` segment, which would leave the client's path",
                    );
                }
            }
            if let Ok(mut path) = url.path_segments_mut() {
                path.extend(relative.split('/'));
            }
        }
        Ok(url)
    }

    /// Whether `url` is `{base}/api/{client}` or below it: the last check
    /// before a secondary token is attached. Compares without allocating.
    pub(crate) fn names(&self, url: &Url) -> bool {
        let expected = self.root.path();
        url.scheme() == self.root.scheme()
            && url.host_str() == self.root.host_str()
            && url.port_or_known_default() == self.root.port_or_known_default()
            && url.query().is_none()
            && url.fragment().is_none()
            && url
                .path()
                .strip_prefix(expected)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Builds `{base}/api/{client}/{relative}`; see [`ClientPath::url`].
#[cfg(test)]
pub(crate) fn client_url(base: &Url, client: &str, relative: &str) -> Result<Url, Error> {
    ClientPath::new(base, client)?.url(relative)
}

/// Whether `url` is `{base}/api/{client}` or below it; see
/// [`ClientPath::names`].
#[cfg(test)]
pub(crate) fn names_client(base: &Url, url: &Url, client: &str) -> bool {
    ClientPath::new(base, client).is_ok_and(|p| p.names(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://api.example.com/prefix/").unwrap()
    }

    #[test]
    fn app_id_uris_and_bare_ids_map_to_a_path_id_and_a_scope() {
        let c = NamedClient::parse("api://clientXYZ").unwrap();
        assert_eq!(c.path_id(), "clientXYZ");
        assert_eq!(c.scope(), "api://clientXYZ/.default");
        assert_eq!(NamedClient::parse("clientXYZ").unwrap(), c);
        let g = "00001111-aaaa-2222-bbbb-3333cccc4444";
        let c = NamedClient::parse(g).unwrap();
        assert_eq!(c.app_id_uri(), format!("api://{g}"));
        let c = NamedClient::new("clientXYZ", "https://contoso.com/clientXYZ/.default").unwrap();
        assert_eq!(c.scope(), "https://contoso.com/clientXYZ/.default");
        assert!(NamedClient::new("clientABC", "api://clientXYZ").is_err());
        NamedClient::new("clientABC", &format!("api://{g}")).unwrap();
        for bad in [
            "api://contoso.com/clientXYZ",
            "https://contoso.com/x",
            "api://",
        ] {
            assert!(NamedClient::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_altering_client_ids_are_refused_naming_the_value() {
        for bad in [
            "", "a/b", "..", ".", "a..b", "a?b", "a#b", "a%2Fb", "a b", "a\nb", "a\\b", "é",
            "a\u{0}b",
        ] {
            let err = check_client_id(bad).unwrap_err().to_string();
            assert!(err.contains("client id"), "{bad:?}: {err}");
            let shown = crate::error::shorten(bad);
            assert!(err.contains(&format!("`{shown}`")), "{bad:?}: {err}");
        }
        for good in [
            "clientXYZ",
            "00001111-aaaa-2222-bbbb-3333cccc4444",
            "a.b",
            "a_b~c",
        ] {
            check_client_id(good).unwrap();
        }
    }

    #[test]
    fn relative_paths_stay_under_the_clients_path() {
        let b = base();
        let u = client_url(&b, "clientXYZ", "data").unwrap();
        assert_eq!(
            u.as_str(),
            "https://api.example.com/prefix/api/clientXYZ/data"
        );
        assert!(names_client(&b, &u, "clientXYZ"));
        assert!(!names_client(&b, &u, "clientXY"));
        let u = client_url(&b, "clientXYZ", "").unwrap();
        assert_eq!(u.path(), "/prefix/api/clientXYZ");
        // Literal segments are encoded, never interpreted.
        let u = client_url(&b, "clientXYZ", "%2e%2e/a b/c\\d").unwrap();
        assert_eq!(u.path(), "/prefix/api/clientXYZ/%252e%252e/a%20b/c%5Cd");
        assert!(names_client(&b, &u, "clientXYZ"));
        for bad in [
            "../clientABC/data",
            "data/../../clientABC",
            "./data",
            "/api/clientABC/data",
            "https://evil.example.com/api/clientXYZ/data",
            "data?client=clientABC",
            "data#x",
            "data//x",
            "data/",
            "data\r\nX-Secondary-Token: x",
        ] {
            let err = client_url(&b, "clientXYZ", bad).unwrap_err().to_string();
            assert!(err.contains("invalid path"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn app_id_uris_are_checked() {
        assert_eq!(
            app_id_uri_of("x", "api://secure-api/.default").unwrap(),
            "api://secure-api"
        );
        assert_eq!(
            app_id_uri_of("x", "api://secure-api/").unwrap(),
            "api://secure-api"
        );
        for bad in [
            "",
            " api://x",
            "not a uri",
            "api://x?y",
            "api://x#y",
            "/.default",
        ] {
            assert!(app_id_uri_of("x", bad).is_err(), "{bad:?}");
        }
    }
}
