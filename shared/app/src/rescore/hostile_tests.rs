use super::*;
use leadsync_domain::hostile;
use proptest::prelude::*;

/// S3's documented record shape.
const S3_NOTIFICATION: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-12-01T09:00:00.000Z","eventName":"ObjectCreated:Put","userIdentity":{"principalId":"AWS:AIDAEXAMPLE"},"requestParameters":{"sourceIPAddress":"203.0.113.7"},"responseElements":{"x-amz-request-id":"C3D13FE58DE4C810"},"s3":{"s3SchemaVersion":"1.0","configurationId":"criteria-upload","bucket":{"name":"b","ownerIdentity":{"principalId":"A3NL1KOZZKEXAMPLE"},"arn":"arn:aws:s3:::b"},"object":{"key":"criteria/q4+plan%2Bv%3D2+d%C3%A9mo.toml","size":812,"eTag":"d41d8cd98f00b204e9800998ecf8427e","sequencer":"0055AED6DCD90281E5"}}}]}"#;
const S3_EVENTBRIDGE: &str = r#"{"version":"0","id":"1","detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"b"},"object":{"key":"criteria/v2.toml"}}}"#;
const REQUEST: &str = r#"{"version":"0","detail-type":"leadsync.rescore","source":"ops","detail":{"lead_ids":["101","102"]}}"#;
const URL: &str = r#"{"version":"2.0","rawPath":"/","rawQueryString":"","headers":{"host":"x.lambda-url.us-east-1.on.aws"},"requestContext":{"http":{"method":"POST"}},"body":"{\"since\":\"2026-11-01T00:00:00Z\"}","isBase64Encoded":false}"#;

/// Hostile function events: any JSON, and each trigger's real shape garbled. Reading one
/// never panics; a refusal says what is wrong; an upload key is never empty-handed (a
/// notification of n records names n keys).
#[test]
fn hostile_function_events_are_read_or_refused_by_name() {
    let payload = prop_oneof![
        hostile::json(),
        hostile::text(&[S3_NOTIFICATION, S3_EVENTBRIDGE, REQUEST, URL])
            .prop_filter_map("JSON", |t| serde_json::from_str::<Value>(&t).ok()),
    ];
    hostile::check("rescore function events", 4_000, payload, |payload| {
        match Invocation::read(&payload) {
            Ok(Invocation::Uploads(keys)) => {
                let records = payload
                    .get("Records")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                prop_assert_eq!(keys.len(), records, "one key per record");
            }
            Ok(Invocation::Request(RescoreTarget::Leads(ids))) => prop_assert!(!ids.is_empty()),
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        Ok(())
    });
}

/// Hostile re-score request bodies (function URL, EventBridge detail).
#[test]
fn hostile_rescore_bodies_name_exactly_one_target_or_are_refused() {
    let body = hostile::text(&[
        r#"{"lead_ids":["1","2"]}"#,
        r#"{"since":"2026-11-01T00:00:00Z"}"#,
        r#"{"all":true}"#,
    ]);
    hostile::check("rescore request bodies", 3_000, body, |body| {
        let read = serde_json::from_str::<Value>(&body).and_then(RescoreRequest::read);
        if let Ok(request) = read {
            let asked = usize::from(!request.lead_ids.is_empty())
                + usize::from(request.since.is_some())
                + usize::from(request.all);
            prop_assert_eq!(request.target().is_ok(), asked == 1);
        }
        Ok(())
    });
}

#[test]
fn every_trigger_is_told_apart() {
    let read = |text: &str| Invocation::read(&serde_json::from_str(text).unwrap_or(Value::Null));
    assert_eq!(
        read(S3_NOTIFICATION).ok(),
        Some(Invocation::Uploads(vec![
            "criteria/q4 plan+v=2 démo.toml".into()
        ]))
    );
    assert_eq!(
        read(S3_EVENTBRIDGE).ok(),
        Some(Invocation::Upload("criteria/v2.toml".into()))
    );
    assert!(matches!(
        read(REQUEST),
        Ok(Invocation::Request(RescoreTarget::Leads(_)))
    ));
    assert_eq!(read(URL).ok(), Some(Invocation::Url));
    let e = read(r#"{"Records":[{"s3":{}}]}"#)
        .err()
        .map(|e| e.to_string());
    assert!(e.is_some_and(|e| e.contains("Records[0]")));
}
