"""Plain HTTP (Python's urllib, no Azure library) against the sandbox's REST
paths: the token endpoint, Event Hubs' HTTPS send API and the aggregator
API's two-token scheme.

Settings: a TLS context trusting the sandbox CA (`cafile=`), and for Event
Hubs the namespace in the `Host` header while the connection goes to the
sandbox's address, as a client keeping the real namespace URL would.
"""

import json
import platform
import urllib.error
import urllib.parse
import urllib.request

from compat import authority_host, claims, env, expect, fail, main, ok, tls_context

EVENTHUBS_SCOPE = "https://eventhubs.azure.net/.default"


def ran(check):
    print(f"client: python urllib (http.client) {platform.python_version()}  check: {check}",
          flush=True)


def call(method, url, headers=None, body=None):
    """(status, reason, headers, body) of one HTTPS request; never raises on 4xx/5xx."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=tls_context(), timeout=60) as r:
            return r.status, r.reason, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.reason, dict(e.headers), e.read()


def token(tenant, scope, basic=False):
    """A token by the client-credentials grant, the secret in the form body
    (client_secret_post) or in an HTTP Basic header (client_secret_basic)."""
    form = {"grant_type": "client_credentials", "scope": scope}
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if basic:
        import base64
        # RFC 6749 section 2.3.1: each part form-urlencoded, then Basic.
        pair = (urllib.parse.quote_plus(env("AZURE_CLIENT_ID")) + ":"
                + urllib.parse.quote_plus(env("AZURE_CLIENT_SECRET")))
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        form["client_id"] = env("AZURE_CLIENT_ID")
        form["client_secret"] = env("AZURE_CLIENT_SECRET")
    status, _, _, body = call("POST", f"{authority_host()}{tenant}/oauth2/v2.0/token",
                              headers, urllib.parse.urlencode(form).encode())
    if status != 200:
        fail(f"token request to tenant {tenant} for {scope}: HTTP {status}: {body[:500]!r}")
    return json.loads(body)["access_token"]


def send(access_token, body=b'{"celsius": 21.5}'):
    endpoint = env("EVENTHUBS_HTTPS_ENDPOINT").rstrip("/")
    return call("POST", f"{endpoint}/{env('EVENTHUBS_HUB')}/messages", {
        "Host": env("EVENTHUBS_NAMESPACE"),
        "Authorization": f"Bearer {access_token}",
        "Content-Type": "application/atom+xml;type=entry;charset=utf-8",
    }, body)


def eventhubs_send():
    ran("Event Hubs HTTPS send")
    status, reason, _, body = send(token(env("AZURE_TENANT_ID"), EVENTHUBS_SCOPE))
    expect(status == 201, f"send answered {status} {reason}: {body[:500]!r}")
    ok(f"HTTP {status} {reason}")


def eventhubs_home_tenant():
    ran("Event Hubs HTTPS send with a home-tenant token")
    home = token(env("SBX_PARTNER_TENANT_ID"), EVENTHUBS_SCOPE)
    status, reason, headers, body = send(home)
    expect(status == 401, f"a home-tenant token was answered {status} {reason}: {body[:500]!r}")
    if "40100" in reason:
        expect(body == b"", f"the reason phrase carries the sub-code but the body is {body!r}")
        print(f"form: reason-phrase ({status} {reason}, Content-Length "
              f"{headers.get('Content-Length')})")
    elif b"<Code>401</Code>" in body and b"SubCode=40100" in body:
        print(f"form: xml ({status} {reason}: {body.decode()})")
    else:
        fail(f"401 without sub-code 40100: reason {reason!r}, body {body!r}")
    ok(f"home-tenant token refused: HTTP {status} {reason}")


def api_two_tokens():
    ran("aggregator API, two tokens")
    owner = env("AZURE_TENANT_ID")
    api = token(owner, env("AGGREGATOR_API_SCOPE"))
    client = env("AGGREGATOR_CLIENT")
    secondary = token(owner, f"api://{client}/.default")
    url = f"{env('AGGREGATOR_API_URL').rstrip('/')}/api/{client}/data"
    status, reason, _, body = call("GET", url, {
        "Authorization": f"Bearer {api}", "X-Secondary-Token": secondary})
    expect(status == 200, f"with both tokens: {status} {reason}: {body[:500]!r}")
    ok(f"both tokens: HTTP {status}, {json.loads(body)}")
    status, reason, _, body = call("GET", url, {"Authorization": f"Bearer {api}"})
    expect(status == 403, f"without the secondary token: {status} {reason}: {body[:500]!r}")
    ok(f"API token only: HTTP {status}, {json.loads(body)}")


def token_basic():
    ran("client_secret_basic (id and secret in an HTTP Basic header)")
    t = token(env("AZURE_TENANT_ID"), EVENTHUBS_SCOPE, basic=True)
    c = claims(t)
    expect(c.get("appid") == env("AZURE_CLIENT_ID"), f"appid {c.get('appid')}")
    expect(c.get("tid") == env("AZURE_TENANT_ID"), f"tid {c.get('tid')}")
    ok(f"Basic-authenticated token for {c['aud']}, appidacr {c.get('appidacr')}")


def discovery_v1():
    ran("v1 and v2 OpenID discovery, JWKS with certificates")
    tid = env("AZURE_TENANT_ID")
    for tenant in (tid, env("SBX_TENANT_DOMAIN")):
        status, _, _, body = call("GET", f"{authority_host()}{tenant}/.well-known/openid-configuration")
        expect(status == 200, f"v1 discovery for {tenant}: {status}")
        doc = json.loads(body)
        expect(doc["issuer"] == f"https://sts.windows.net/{tid}/", f"v1 issuer {doc['issuer']}")
        expect("client_secret_basic" in doc["token_endpoint_auth_methods_supported"],
               "client_secret_basic not advertised")
    status, _, _, body = call("GET", f"{authority_host()}{tid}/v2.0/.well-known/openid-configuration")
    doc = json.loads(body)
    expect(doc["issuer"] == f"https://login.microsoftonline.com/{tid}/v2.0",
           f"v2 issuer {doc['issuer']}")
    status, _, _, body = call("GET", doc["jwks_uri"])
    keys = json.loads(body)["keys"]
    for k in keys:
        expect(k.get("x5c") and k.get("x5t") and k["kid"] == k["x5t"], f"key without certificate: {k}")
    ok(f"v1 issuer https://sts.windows.net/{tid}/, v2 issuer {doc['issuer']}, "
       f"{len(keys)} key(s) with x5c/x5t")


def api_v2_token():
    ran("v2.0 token for the v2 API")
    t = token(env("AZURE_TENANT_ID"), env("API_V2_SCOPE"))
    c = claims(t)
    expect(c.get("ver") == "2.0", f"ver {c.get('ver')}")
    expect(c.get("aud") == env("API_V2_CLIENT_ID"), f"aud {c.get('aud')}")
    expect(c.get("azp") == env("AZURE_CLIENT_ID") and "appid" not in c, f"claims {c}")
    ok(f"v2.0 token: aud {c['aud']}, iss {c['iss']}, azp {c['azp']}")


main({
    "token-basic": token_basic,
    "discovery-v1": discovery_v1,
    "api-v2-token": api_v2_token,
    "eventhubs-send": eventhubs_send,
    "eventhubs-home-tenant": eventhubs_home_tenant,
    "api-two-tokens": api_two_tokens,
})
