//! HubSpot webhooks: the v3 signature and the contact ids an event batch names.
//!
//! v3: `base64(HMAC-SHA256(app secret, method + uri + body + timestamp))` in
//! `X-HubSpot-Signature-v3`, the timestamp (ms) in `X-HubSpot-Request-Timestamp`; requests
//! older than five minutes are refused (replays). The URI is the full URL as HubSpot called it,
//! with the percent-escapes HubSpot decodes before signing decoded the same way.

use base64::Engine;
use hmac::{Hmac, Mac};
use leadsync_domain::LeadId;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;

/// How old a signed request may be.
pub const MAX_AGE_MS: i64 = 5 * 60 * 1000;

/// Why a webhook request is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("header {0} is missing")]
    Missing(&'static str),
    #[error("X-HubSpot-Request-Timestamp is not a number of milliseconds")]
    BadTimestamp,
    #[error("the request is {age_ms} ms old, over the 5-minute limit")]
    TooOld { age_ms: i64 },
    #[error("the request is stamped {ahead_ms} ms ahead of this clock, over the 5-minute limit")]
    FromTheFuture { ahead_ms: i64 },
    #[error("the signature does not match")]
    Mismatch,
}

/// The escapes HubSpot decodes in the URI before signing.
const DECODED: &[(&str, &str)] = &[
    ("%3A", ":"),
    ("%2F", "/"),
    ("%3F", "?"),
    ("%40", "@"),
    ("%21", "!"),
    ("%24", "$"),
    ("%27", "'"),
    ("%28", "("),
    ("%29", ")"),
    ("%2A", "*"),
    ("%2C", ","),
    ("%3B", ";"),
];

fn decode_uri(uri: &str) -> String {
    let mut out = uri.to_owned();
    for (escaped, plain) in DECODED {
        out = out
            .replace(escaped, plain)
            .replace(&escaped.to_lowercase(), plain);
    }
    out
}

/// The v3 signature of a request.
pub fn sign(secret: &SecretString, method: &str, uri: &str, body: &str, timestamp: &str) -> String {
    // HMAC accepts a key of any length.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(method.as_bytes());
    mac.update(decode_uri(uri).as_bytes());
    mac.update(body.as_bytes());
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Verify a request's v3 signature at `now_ms`.
///
/// # Errors
/// [`SignatureError`] saying what is wrong (never the secret or the expected value).
pub fn verify(
    secret: &SecretString,
    method: &str,
    uri: &str,
    body: &str,
    signature: Option<&str>,
    timestamp: Option<&str>,
    now_ms: i64,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing("X-HubSpot-Signature-v3"))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing("X-HubSpot-Request-Timestamp"))?;
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // Saturating: a hostile timestamp (i64::MIN) must not overflow; a request stamped more
    // than five minutes ahead of our clock is refused like one five minutes behind it (a
    // signature is valid for one short window, whichever way the clocks differ).
    let age_ms = now_ms.saturating_sub(sent);
    if age_ms > MAX_AGE_MS {
        return Err(SignatureError::TooOld { age_ms });
    }
    if age_ms < -MAX_AGE_MS {
        return Err(SignatureError::FromTheFuture {
            ahead_ms: age_ms.saturating_neg(),
        });
    }
    let expected = sign(secret, method, uri, body, timestamp);
    // Constant-time comparison: verify through the MAC of both values.
    let equal = expected.len() == signature.len()
        && expected
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if equal {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// One event of a webhook batch (the fields used).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookEvent {
    subscription_type: String,
    object_id: serde_json::Value,
    #[serde(default)]
    property_name: Option<String>,
}

/// An event's `objectId` as a contact id (HubSpot sends a number; a string is accepted).
fn object_id(value: &serde_json::Value) -> Option<LeadId> {
    match value {
        serde_json::Value::Number(n) => LeadId::new(n.to_string()).ok(),
        serde_json::Value::String(s) => LeadId::new(s.clone()).ok(),
        _ => None,
    }
}

/// What a batch of webhook events asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Asked {
    /// Contacts created or changed: re-score them (deduplicated, in order).
    pub rescore: Vec<LeadId>,
    /// Contacts HubSpot erased on a GDPR request (`contact.privacyDeletion`): erase them here
    /// too (deduplicated, in order; never also re-scored).
    pub erase: Vec<LeadId>,
    /// Events about nothing to do: other objects, plain deletions (the nightly run reads
    /// those), our own push echoing back, ids that are not ids.
    pub skipped: usize,
}

/// What a batch of webhook events asks for. Subscription types are matched without regard to
/// case (HubSpot writes `contact.privacyDeletion`).
///
/// # Errors
/// The body is not a JSON array of events.
pub fn contacts_of(body: &str, own: &[String]) -> Result<Asked, serde_json::Error> {
    let events: Vec<WebhookEvent> = serde_json::from_str(body)?;
    let mut asked = Asked::default();
    for event in events {
        let kind = event.subscription_type.to_ascii_lowercase();
        let id = object_id(&event.object_id);
        let Some(id) = id.filter(|_| kind.starts_with("contact.")) else {
            asked.skipped += 1;
            continue;
        };
        if kind == "contact.privacydeletion" {
            asked.rescore.retain(|r| r != &id);
            if !asked.erase.contains(&id) {
                asked.erase.push(id);
            }
            continue;
        }
        let own_echo = event
            .property_name
            .as_deref()
            .is_some_and(|p| own.iter().any(|o| o == p));
        if kind.ends_with("deletion") || own_echo || asked.erase.contains(&id) {
            asked.skipped += 1;
        } else if !asked.rescore.contains(&id) {
            asked.rescore.push(id);
        }
    }
    Ok(asked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadsync_domain::hostile;
    use proptest::prelude::*;

    /// Found by the hostile-input test: a timestamp of i64::MIN overflowed the age (a panic
    /// in debug builds, a wrapped age that passed the check in release).
    #[test]
    fn an_extreme_timestamp_is_refused_not_overflowed() {
        let ts = i64::MIN.to_string();
        let sig = sign(&secret(), "POST", "https://h/p", "[]", &ts);
        assert!(matches!(
            verify(
                &secret(),
                "POST",
                "https://h/p",
                "[]",
                Some(&sig),
                Some(&ts),
                1_700_000_000_000
            ),
            Err(SignatureError::TooOld { .. })
        ));
        let ts = i64::MAX.to_string();
        let sig = sign(&secret(), "POST", "https://h/p", "[]", &ts);
        assert!(matches!(
            verify(
                &secret(),
                "POST",
                "https://h/p",
                "[]",
                Some(&sig),
                Some(&ts),
                -1
            ),
            Err(SignatureError::FromTheFuture { .. })
        ));
    }

    /// Hostile webhook requests: any method, URI, body, signature and timestamp header. Never
    /// a panic; a correctly signed request verifies exactly when its stamp is within five
    /// minutes of now either way (a replay of an older one never does); a wrong signature never.
    #[test]
    fn hostile_webhook_headers_verify_only_when_signed_and_fresh() {
        let strategy = (
            hostile::text(&["https://abc.lambda-url.us-east-1.on.aws/hubspot?x=1%3A2"]),
            hostile::text(&[r#"[{"objectId":123,"subscriptionType":"contact.propertyChange"}]"#]),
            prop_oneof![
                any::<i64>().prop_map(|t| t.to_string()),
                (-2 * MAX_AGE_MS..2 * MAX_AGE_MS).prop_map(|d| (1_700_000_000_000 + d).to_string()),
                hostile::text(&["1700000000000"]),
            ],
            prop_oneof![Just(None), hostile::text(&["abc="]).prop_map(Some)],
        );
        hostile::check(
            "webhook signature headers",
            4_000,
            strategy,
            |(uri, body, ts, forged)| {
                let now = 1_700_000_000_000;
                let good = sign(&secret(), "POST", &uri, &body, &ts);
                let signature = forged.clone().unwrap_or_else(|| good.clone());
                let outcome = verify(
                    &secret(),
                    "POST",
                    &uri,
                    &body,
                    Some(&signature),
                    Some(&ts),
                    now,
                );
                match ts.parse::<i64>() {
                    Err(_) => prop_assert_eq!(outcome, Err(SignatureError::BadTimestamp)),
                    Ok(sent) => {
                        let fresh = (now as i128 - sent as i128).abs() <= MAX_AGE_MS as i128;
                        let signed = signature == good;
                        prop_assert_eq!(outcome.is_ok(), fresh && signed, "{:?}", outcome);
                    }
                }
                Ok(())
            },
        );
    }

    /// Hostile webhook bodies: any JSON or garbled batch. Never a panic; each contact named is
    /// one of a contact event's, and every event is a contact named, a repeat or skipped.
    #[test]
    fn hostile_webhook_bodies_account_for_every_event() {
        let event = (
            proptest::sample::select(vec![
                "contact.creation", "contact.propertyChange", "contact.deletion",
                "contact.privacyDeletion", "deal.creation", "company.propertyChange", "",
            ]),
            hostile::json(),
            prop_oneof![Just(None), proptest::sample::select(vec!["email", "leadsync_stage"]).prop_map(Some)],
        )
            .prop_map(|(t, id, p)| serde_json::json!({"subscriptionType": t, "objectId": id, "propertyName": p}));
        let body = prop_oneof![
            proptest::collection::vec(event, 0..20)
                .prop_map(|e| serde_json::Value::from(e).to_string()),
            hostile::text(&[
                r#"[{"objectId":1,"subscriptionType":"contact.propertyChange","propertyName":"email"},{"objectId":"2","subscriptionType":"contact.creation"}]"#
            ]),
        ];
        hostile::check("webhook bodies", 3_000, body, |body| {
            if let Ok(Asked {
                rescore,
                erase,
                skipped,
            }) = contacts_of(&body, &["leadsync_stage".to_owned()])
            {
                let events: Vec<serde_json::Value> =
                    serde_json::from_str(&body).unwrap_or_default();
                let named: std::collections::HashSet<&LeadId> =
                    rescore.iter().chain(&erase).collect();
                prop_assert_eq!(
                    named.len(),
                    rescore.len() + erase.len(),
                    "each contact once"
                );
                prop_assert!(rescore.len() + erase.len() + skipped <= events.len());
                let repeats = events.len() - rescore.len() - erase.len() - skipped;
                prop_assert!(
                    repeats == 0 || !named.is_empty(),
                    "only repeats of a named contact are folded"
                );
                // Every privacy deletion is an erasure, never a re-score.
                for e in &events {
                    let privacy = e
                        .get("subscriptionType")
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(|t| t.eq_ignore_ascii_case("contact.privacyDeletion"));
                    let id = e.get("objectId").and_then(object_id);
                    if let (true, Some(id)) = (privacy, id) {
                        prop_assert!(erase.contains(&id) && !rescore.contains(&id));
                    }
                }
            }
            Ok(())
        });
    }

    fn secret() -> SecretString {
        SecretString::from("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy")
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_breaks_it() {
        let uri = "https://abc.lambda-url.us-east-1.on.aws/hubspot?x=1";
        let body = r#"[{"objectId":123,"subscriptionType":"contact.propertyChange"}]"#;
        let ts = "1700000000000";
        let sig = sign(&secret(), "POST", uri, body, ts);
        let now = 1_700_000_060_000;
        assert_eq!(
            verify(&secret(), "POST", uri, body, Some(&sig), Some(ts), now),
            Ok(())
        );
        assert_eq!(
            verify(
                &secret(),
                "POST",
                uri,
                &body.replace("123", "124"),
                Some(&sig),
                Some(ts),
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                &SecretString::from("other"),
                "POST",
                uri,
                body,
                Some(&sig),
                Some(ts),
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                &secret(),
                "POST",
                uri,
                body,
                Some(&sig),
                Some(ts),
                now + MAX_AGE_MS
            ),
            Err(SignatureError::TooOld {
                age_ms: MAX_AGE_MS + 60_000
            })
        );
        assert_eq!(
            verify(&secret(), "POST", uri, body, None, Some(ts), now),
            Err(SignatureError::Missing("X-HubSpot-Signature-v3"))
        );
    }

    #[test]
    fn the_uri_is_signed_with_hubspots_decoded_escapes() {
        let ts = "1";
        let plain = sign(&secret(), "POST", "https://h/p?a=b:c", "", ts);
        assert_eq!(
            sign(&secret(), "POST", "https://h/p?a=b%3Ac", "", ts),
            plain
        );
        assert_eq!(
            sign(&secret(), "POST", "https://h/p?a=b%3ac", "", ts),
            plain
        );
    }

    #[test]
    fn a_known_signature() {
        // HMAC-SHA256("secret", "POSThttps://example.com/webhook[]1700000000000"), base64.
        let sig = sign(
            &SecretString::from("secret"),
            "POST",
            "https://example.com/webhook",
            "[]",
            "1700000000000",
        );
        assert_eq!(sig.len(), 44);
        assert!(sig.ends_with('='));
    }

    /// HubSpot's GDPR deletion is `contact.privacyDeletion`: it was missed by a case-sensitive
    /// match and re-scored the person instead of erasing them.
    #[test]
    fn a_privacy_deletion_asks_for_an_erasure_never_a_rescore() {
        let body = r#"[
            {"objectId":7,"subscriptionType":"contact.propertyChange","propertyName":"email"},
            {"objectId":7,"subscriptionType":"contact.privacyDeletion"},
            {"objectId":7,"subscriptionType":"contact.propertyChange","propertyName":"phone"},
            {"objectId":8,"subscriptionType":"CONTACT.PRIVACYDELETION"},
            {"objectId":9,"subscriptionType":"contact.creation"}
        ]"#;
        let asked = contacts_of(body, &[]).unwrap();
        let ids = |v: &[&str]| {
            v.iter()
                .map(|i| LeadId::new(*i).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(asked.erase, ids(&["7", "8"]));
        assert_eq!(asked.rescore, ids(&["9"]));
        assert_eq!(asked.skipped, 1);
    }

    #[test]
    fn contacts_are_deduplicated_and_our_own_echo_skipped() {
        let body = r#"[
            {"objectId":1,"subscriptionType":"contact.propertyChange","propertyName":"email"},
            {"objectId":1,"subscriptionType":"contact.propertyChange","propertyName":"phone"},
            {"objectId":2,"subscriptionType":"contact.creation"},
            {"objectId":3,"subscriptionType":"contact.propertyChange","propertyName":"leadsync_stage"},
            {"objectId":4,"subscriptionType":"contact.deletion"},
            {"objectId":5,"subscriptionType":"deal.creation"}
        ]"#;
        let asked = contacts_of(body, &["leadsync_stage".to_owned()]).unwrap();
        assert_eq!(
            asked.rescore,
            vec![LeadId::new("1").unwrap(), LeadId::new("2").unwrap()]
        );
        assert_eq!(asked.skipped, 3);
        assert!(asked.erase.is_empty());
        assert!(contacts_of("{}", &[]).is_err());
    }
}
