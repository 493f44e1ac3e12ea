"""msal (Microsoft Authentication Library for Python) against the sandbox's
identity provider: ConfidentialClientApplication with a client secret (tenant
by GUID and by domain) and with a certificate.

Settings msal needs (and nothing else): `authority=f"{host}{tenant}"`,
`instance_discovery=False` (the sandbox is not a known Microsoft cloud, so
msal must not ask login.microsoftonline.com about it) and `verify=<CA file>`
(passed to its requests session).
"""

import msal
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from compat import authority_host, claims, env, expect, fail, main, ok, ran

EVENTHUBS_SCOPE = "https://eventhubs.azure.net/.default"


def app(tenant, credential):
    return msal.ConfidentialClientApplication(
        env("AZURE_CLIENT_ID"),
        client_credential=credential,
        authority=f"{authority_host()}{tenant}",
        instance_discovery=False,
        verify=env("SBX_CA_FILE"),
    )


def token(tenant, credential, scope=EVENTHUBS_SCOPE):
    result = app(tenant, credential).acquire_token_for_client(scopes=[scope])
    if "access_token" not in result:
        fail(f"msal got no token from tenant {tenant}: {result.get('error')}: "
             f"{result.get('error_description')}")
    return result["access_token"]


def check_claims(access_token, how):
    c = claims(access_token)
    owner = env("AZURE_TENANT_ID")
    expect(c.get("tid") == owner, f"tid {c.get('tid')} is not the resource tenant {owner}")
    expect(c.get("aud") == "https://eventhubs.azure.net",
           f"aud {c.get('aud')} is not Event Hubs")
    expect(c.get("appid") == env("AZURE_CLIENT_ID"), f"appid {c.get('appid')}")
    expect(c.get("appidacr") == how, f"appidacr {c.get('appidacr')} is not {how}")
    return c


def token_guid():
    ran("msal", "client secret, tenant by GUID")
    t = token(env("AZURE_TENANT_ID"), env("AZURE_CLIENT_SECRET"))
    c = check_claims(t, "1")
    ok(f"token for {c['aud']} from tenant {c['tid']} (ver {c.get('ver')})")


def token_domain():
    ran("msal", "client secret, tenant by domain")
    t = token(env("SBX_TENANT_DOMAIN"), env("AZURE_CLIENT_SECRET"))
    c = check_claims(t, "1")
    ok(f"token from {env('SBX_TENANT_DOMAIN')} carries tid {c['tid']}")


def certificate():
    ran("msal", "certificate credential")
    with open(env("SBX_CERT_FILE"), "rb") as f:
        pem = f.read()
    cert = x509.load_pem_x509_certificate(pem)
    credential = {
        "private_key": pem.decode(),
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),
        "public_certificate": cert.public_bytes(Encoding.PEM).decode(),
    }
    t = token(env("AZURE_TENANT_ID"), credential)
    c = check_claims(t, "2")
    ok(f"certificate token for {c['aud']} from tenant {c['tid']}")


def wrong_secret():
    ran("msal", "wrong secret is refused")
    result = app(env("AZURE_TENANT_ID"), "not-the-secret").acquire_token_for_client(
        scopes=[EVENTHUBS_SCOPE])
    expect("access_token" not in result, "a wrong secret got a token")
    expect(7000215 in (result.get("error_codes") or []),
           f"expected AADSTS7000215, got {result}")
    ok(f"refused: {result['error']} {result['error_codes']}")


def v2_token():
    ran("msal", "v2.0 token for the v2 API")
    t = token(env("AZURE_TENANT_ID"), env("AZURE_CLIENT_SECRET"), env("API_V2_SCOPE"))
    c = claims(t)
    expect(c.get("ver") == "2.0", f"ver {c.get('ver')}")
    expect(c.get("aud") == env("API_V2_CLIENT_ID"), f"aud {c.get('aud')}")
    expect(c.get("iss") == f"https://login.microsoftonline.com/{env('AZURE_TENANT_ID')}/v2.0",
           f"iss {c.get('iss')}")
    expect(c.get("azp") == env("AZURE_CLIENT_ID") and c.get("azpacr") == "1", f"claims {c}")
    ok(f"v2.0 token: aud {c['aud']}, azp {c['azp']}")


main({
    "v2-token": v2_token,
    "token-guid": token_guid,
    "token-domain": token_domain,
    "certificate": certificate,
    "wrong-secret": wrong_secret,
})
