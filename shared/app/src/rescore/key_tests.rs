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

/// The notification the local tools send reads back as the key that was put, whatever it
/// holds, and passes for S3's own record type.
#[test]
fn a_put_notification_names_the_key_that_was_put() {
    use super::{Invocation, put_notification};
    let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    for key in [
        "criteria/b2b-saas.toml",
        "criteria/q4 plan+v=2 démo.toml",
        "criteria/50%/a&b?.toml",
        "demo:b2b-saas-2026.11.2.toml",
    ] {
        let event = put_notification("leadsync-demo", key, at);
        assert_eq!(
            Invocation::read(&event).ok(),
            Some(Invocation::Uploads(vec![key.to_owned()])),
            "{event}"
        );
        assert_eq!(event["Records"][0]["s3"]["bucket"]["name"], "leadsync-demo");
    }
}
