//! Guards of the validator found by mutation testing (docs/MUTANTS.md in
//! the repository root): each test here kills a mutant that survived the
//! rest of the suite.

mod common;

use common::World;
use crosstenant_sandbox::demo::API_URI;
use crosstenant_validator::{TokenProblem, MAX_TOKEN_LEN};

/// The size limit on a token (which keeps a flood of huge headers from
/// costing a base64 decode each) is inclusive: `MAX_TOKEN_LEN` bytes are
/// still read, and refused here only because they are not a JWT; one byte
/// more is refused unread, as too large. Kills `replace > with >= in
/// Validator::verify_signed`.
#[tokio::test]
async fn a_token_of_exactly_the_size_limit_is_read_and_one_byte_more_is_not() {
    let world = World::start().await;
    let v = world.builder().build().expect("validator");
    let audiences = [API_URI.to_string()];
    let at_limit = "a".repeat(MAX_TOKEN_LEN);
    match v.verify(&at_limit, &audiences).await {
        Err(TokenProblem::Malformed(why)) => assert!(why.contains("three"), "{why}"),
        other => panic!("expected Malformed at the limit, got {other:?}"),
    }
    let over = "a".repeat(MAX_TOKEN_LEN + 1);
    match v.verify(&over, &audiences).await {
        Err(TokenProblem::TooLarge { limit }) => assert_eq!(limit, MAX_TOKEN_LEN),
        other => panic!("expected TooLarge over the limit, got {other:?}"),
    }
}

/// Mapping a method again replaces what it needed before, so an API can
/// tighten a default: after `.method(GET, Write)`, a read-only grant no
/// longer reads. Other methods keep their defaults, and a method never
/// mapped is refused. Kills `replace != with == in ValidatorBuilder::method`
/// (which kept the old mapping first, so GET stayed a read) and the
/// builder's empty `Debug`.
#[tokio::test]
async fn mapping_a_method_again_replaces_its_default_and_keeps_the_others() {
    use crosstenant_validator::Access;
    use http::Method;
    let world = World::start().await;
    // The builder's Debug names the tenant it accepts (and nothing secret:
    // it holds none).
    let debug = format!("{:?}", world.builder());
    assert!(debug.contains(&world.w.owner.id), "{debug}");
    let v = world
        .builder()
        .method(Method::GET, Access::Write)
        .method(Method::POST, Access::Read)
        .build()
        .expect("validator");
    assert_eq!(v.access_for(&Method::GET), Some(Access::Write));
    assert_eq!(v.access_for(&Method::POST), Some(Access::Read));
    assert_eq!(v.access_for(&Method::HEAD), Some(Access::Read));
    assert_eq!(v.access_for(&Method::PUT), Some(Access::Write));
    assert_eq!(v.access_for(&Method::DELETE), None);
}
