use super::s3_event_key;

#[test]
fn s3_event_keys_are_decoded_whatever_they_hold() {
    for (raw, key) in [
        ("criteria/b2b-saas.toml", "criteria/b2b-saas.toml"),
        ("criteria/q4+plan.toml", "criteria/q4 plan.toml"),
        ("criteria/a%2Bb.toml", "criteria/a+b.toml"),
        ("criteria/v%3D2.toml", "criteria/v=2.toml"),
        ("criteria%2Fnested%2Fx.toml", "criteria/nested/x.toml"),
        ("criteria/d%C3%A9mo.toml", "criteria/démo.toml"),
        ("criteria/50%25.toml", "criteria/50%.toml"),
    ] {
        assert_eq!(s3_event_key(raw).unwrap(), key, "{raw}");
    }
    let error = s3_event_key("criteria/%FF.toml").unwrap_err().to_string();
    assert!(error.contains("criteria/%FF.toml"), "{error}");
}
