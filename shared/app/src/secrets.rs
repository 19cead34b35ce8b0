//! Secrets at cold start: a configured value is used as is; an ARN is fetched from Secrets
//! Manager once, into a `SecretString` that never prints. A secret stored as JSON with one
//! string field (`{"token": "…"}`, the console's key/value form) is unwrapped.

use crate::config::SecretSource;
use secrecy::SecretString;

/// A secret could not be fetched.
#[derive(Debug, thiserror::Error)]
#[error("cannot read secret {arn} from Secrets Manager: {message}")]
pub struct SecretError {
    pub arn: String,
    pub message: String,
}

/// The secret's value.
///
/// # Errors
/// [`SecretError`] naming the ARN (never the value).
pub async fn resolve(
    client: &aws_sdk_secretsmanager::Client,
    source: &SecretSource,
) -> Result<SecretString, SecretError> {
    let arn = match source {
        SecretSource::Value(value) => return Ok(value.clone()),
        SecretSource::SecretsManager(arn) => arn,
    };
    let error = |message: String| SecretError {
        arn: arn.clone(),
        message,
    };
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| error(aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string()))?;
    let text = out
        .secret_string
        .ok_or_else(|| error("the secret has no string value".into()))?;
    Ok(SecretString::from(unwrap_json(text)))
}

/// `{"any": "value"}` with exactly one string field → `value`; anything else as is.
fn unwrap_json(text: String) -> String {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text) {
        Ok(map) if map.len() == 1 => match map.into_iter().next() {
            Some((_, serde_json::Value::String(value))) => value,
            _ => text,
        },
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::unwrap_json;

    #[test]
    fn json_key_value_secrets_are_unwrapped() {
        assert_eq!(unwrap_json(r#"{"token":"pat-1"}"#.into()), "pat-1");
        assert_eq!(unwrap_json("pat-1".into()), "pat-1");
        assert_eq!(
            unwrap_json(r#"{"a":"1","b":"2"}"#.into()),
            r#"{"a":"1","b":"2"}"#
        );
    }
}
