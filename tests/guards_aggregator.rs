//! Guards of the aggregator client found by mutation testing
//! (docs/MUTANTS.md): each test here kills a mutant that survived the rest
//! of the suite.
#![cfg(feature = "https")]

use crosstenant::aggregator::AggregatorClient;
use crosstenant::CrossTenantCredential;

fn aggregator() -> AggregatorClient {
    let credential = CrossTenantCredential::builder()
        .resource_tenant("contoso.onmicrosoft.com")
        .client_id("00001111-aaaa-2222-bbbb-3333cccc4444")
        .client_secret("never-sent")
        .build()
        .unwrap();
    AggregatorClient::builder("https://api.contoso.com/", "api://secure-api", credential)
        .build()
        .unwrap()
}

/// A relative path is literal segments under `/api/{client}/`. Text that
/// parses as a URL without `://` (`https:/host/x`, `urn:…`, `mailto:…`) is
/// what a caller pasting a URL would pass; it is refused as an absolute URL
/// naming the value, not silently turned into odd segments. Kills `replace
/// || with && in ClientPath::url`, which let only `://` URLs be refused.
#[test]
fn a_path_that_parses_as_a_url_without_slashes_is_refused_as_absolute() {
    let handle = aggregator().on_behalf_of("clientXYZ").unwrap();
    for bad in [
        "https:/evil.example/api/clientABC/data",
        "urn:clientABC",
        "mailto:admin@contoso.com",
    ] {
        let err = handle.url(bad).unwrap_err().to_string();
        assert!(err.contains("absolute URL"), "{bad}: {err}");
        assert!(err.contains(bad), "the value is named: {err}");
    }
    // A segment that merely holds a colon later on is still literal.
    assert_eq!(
        handle.url("files/report:1").unwrap().as_str(),
        "https://api.contoso.com/api/clientXYZ/files/report:1"
    );
}
