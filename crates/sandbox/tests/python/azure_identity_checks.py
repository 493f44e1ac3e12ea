"""azure-identity against the sandbox's identity provider:
ClientSecretCredential and CertificateCredential; and ManagedIdentityCredential
against the sandbox's App Service managed identity endpoint, its token handed
to ClientAssertionCredential as the secretless app's federated assertion.

Settings it needs: `authority=<sandbox authority host>`,
`disable_instance_discovery=True` (the sandbox is not a known Microsoft
cloud) and `connection_verify=<CA file>`, an azure-core transport option
that the credential hands to its HTTP pipeline.
"""

from azure.identity import (
    CertificateCredential,
    ClientAssertionCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
)

from compat import authority_host, claims, env, expect, main, ok, ran

EVENTHUBS_SCOPE = "https://eventhubs.azure.net/.default"


def settings():
    return {
        "authority": authority_host(),
        "disable_instance_discovery": True,
        "connection_verify": env("SBX_CA_FILE"),
    }


def check(credential, how):
    t = credential.get_token(EVENTHUBS_SCOPE).token
    c = claims(t)
    owner = env("AZURE_TENANT_ID")
    expect(c.get("tid") == owner, f"tid {c.get('tid')} is not the resource tenant {owner}")
    expect(c.get("aud") == "https://eventhubs.azure.net", f"aud {c.get('aud')}")
    expect(c.get("appidacr") == how, f"appidacr {c.get('appidacr')} is not {how}")
    return c


def client_secret():
    ran("azure-identity", "ClientSecretCredential")
    credential = ClientSecretCredential(
        env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID"), env("AZURE_CLIENT_SECRET"),
        **settings())
    c = check(credential, "1")
    ok(f"ClientSecretCredential token from tenant {c['tid']} for {c['aud']}")


def client_secret_domain():
    ran("azure-identity", "ClientSecretCredential, tenant by domain")
    credential = ClientSecretCredential(
        env("SBX_TENANT_DOMAIN"), env("AZURE_CLIENT_ID"), env("AZURE_CLIENT_SECRET"),
        **settings())
    c = check(credential, "1")
    ok(f"ClientSecretCredential token from {env('SBX_TENANT_DOMAIN')}: tid {c['tid']}")


def certificate():
    ran("azure-identity", "CertificateCredential")
    credential = CertificateCredential(
        env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID"),
        certificate_path=env("SBX_CERT_FILE"), **settings())
    c = check(credential, "2")
    ok(f"CertificateCredential token from tenant {c['tid']} for {c['aud']}")


def v2_token():
    ran("azure-identity", "ClientSecretCredential, v2.0 token for the v2 API")
    credential = ClientSecretCredential(
        env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID"), env("AZURE_CLIENT_SECRET"),
        **settings())
    c = claims(credential.get_token(env("API_V2_SCOPE")).token)
    expect(c.get("ver") == "2.0" and c.get("aud") == env("API_V2_CLIENT_ID"), f"claims {c}")
    ok(f"v2.0 token: aud {c['aud']}, azp {c.get('azp')}")


def managed_identity():
    ran("azure-identity", "ManagedIdentityCredential (App Service) + ClientAssertionCredential")
    mi = ManagedIdentityCredential(client_id=env("SBX_MI_CLIENT_ID"))
    assertion = mi.get_token("api://AzureADTokenExchange/.default").token
    a = claims(assertion)
    expect(a.get("aud") == "api://AzureADTokenExchange", f"assertion aud {a.get('aud')}")
    partner = env("SBX_PARTNER_TENANT_ID")
    expect(a.get("iss") == f"https://login.microsoftonline.com/{partner}/v2.0",
           f"assertion iss {a.get('iss')}")
    credential = ClientAssertionCredential(
        env("AZURE_TENANT_ID"), env("SBX_SECRETLESS_CLIENT_ID"),
        lambda: mi.get_token("api://AzureADTokenExchange/.default").token,
        **settings())
    t = credential.get_token(EVENTHUBS_SCOPE).token
    c = claims(t)
    owner = env("AZURE_TENANT_ID")
    expect(c.get("tid") == owner, f"tid {c.get('tid')} is not the resource tenant {owner}")
    expect(c.get("appid") == env("SBX_SECRETLESS_CLIENT_ID"), f"appid {c.get('appid')}")
    ok(f"managed identity {a.get('oid')} -> secretless app token from tenant {c['tid']}")


main({
    "managed-identity": managed_identity,
    "v2-token": v2_token,
    "client-secret": client_secret,
    "client-secret-domain": client_secret_domain,
    "certificate": certificate,
})
