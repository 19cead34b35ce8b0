use super::*;
use std::collections::HashMap;

fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|k| env.get(k).cloned())
}

#[test]
fn required_keys_are_named() {
    let err = config(&[(BUCKET_NAME, "b"), (CRM_TOKEN, "t")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable TABLE_NAME is required"
    );
}

#[test]
fn invalid_values_are_named_with_the_value() {
    let err = config(&[
        (TABLE_NAME, "t"),
        (BUCKET_NAME, "b"),
        (CRM_TOKEN, "t"),
        (CRM_PAGE_SIZE, "500"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("CRM_PAGE_SIZE = \"500\""), "{err}");
    let err = config(&[
        (TABLE_NAME, "t"),
        (BUCKET_NAME, "b"),
        (CRM_TOKEN, "t"),
        (CRM_BASE_URL, "http://example.com"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("CRM_BASE_URL"), "{err}");
}

#[test]
fn rate_tier() {
    let base = [(TABLE_NAME, "t"), (BUCKET_NAME, "b"), (CRM_TOKEN, "t")];
    assert_eq!(config(&base).unwrap().rate_per_10s, 100);
    assert_eq!(
        config(&[base[0], base[1], base[2], (CRM_RATE_TIER, "pro")])
            .unwrap()
            .rate_per_10s,
        190
    );
    let err = config(&[base[0], base[1], base[2], (CRM_RATE_TIER, "enterprise")]).unwrap_err();
    assert!(err.to_string().contains("CRM_RATE_TIER"), "{err}");
}

#[test]
fn salesforce_signs_in_by_client_credentials_or_jwt_as_configured() {
    let org = [
        (TABLE_NAME, "t"),
        (BUCKET_NAME, "b"),
        (CRM_KIND, "salesforce"),
        (CRM_BASE_URL, "https://acme.my.salesforce.com"),
        (SF_CLIENT_ID, "key"),
    ];
    let cc = config(&[&org[..], &[(SF_CLIENT_SECRET_ARN, "arn:secret")]].concat()).unwrap();
    let sf = cc.salesforce.unwrap();
    assert_eq!(sf.jwt, None);
    assert_eq!(sf.bulk_threshold, 10_000);
    assert!(matches!(&cc.crm_token, SecretSource::SecretsManager(a) if a == "arn:secret"));
    // The template passes the unused flow's variables empty.
    let jwt = config(
        &[
            &org[..],
            &[
                (SF_USERNAME, "integration@acme.com"),
                (SF_CLIENT_SECRET_ARN, ""),
                (SF_PRIVATE_KEY_ARN, "arn:key"),
                (SF_JWT_AUDIENCE, "https://test.salesforce.com"),
                (SF_BULK_THRESHOLD, "0"),
            ],
        ]
        .concat(),
    )
    .unwrap();
    let sf = jwt.salesforce.unwrap();
    assert_eq!(
        sf.jwt,
        Some(JwtSettings {
            username: "integration@acme.com".into(),
            audience: "https://test.salesforce.com".into(),
        })
    );
    assert_eq!(sf.bulk_threshold, 0);
    assert!(matches!(&jwt.crm_token, SecretSource::SecretsManager(a) if a == "arn:key"));
    let no_key =
        config(&[&org[..], &[(SF_USERNAME, "integration@acme.com")]].concat()).unwrap_err();
    assert_eq!(
        no_key.to_string(),
        "environment variable SF_PRIVATE_KEY is required"
    );
}

#[test]
fn secrets_come_as_a_value_or_an_arn() {
    let base = [(TABLE_NAME, "t"), (BUCKET_NAME, "b")];
    let c = config(&[
        base[0],
        base[1],
        (CRM_TOKEN_SECRET_ARN, "arn:aws:secretsmanager:x"),
    ])
    .unwrap();
    assert!(
        matches!(&c.crm_token, SecretSource::SecretsManager(a) if a == "arn:aws:secretsmanager:x")
    );
    let err = config(&base).unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable CRM_TOKEN is required"
    );
}

#[test]
fn the_rate_is_shared_by_concurrent_slices_and_an_inline_run_has_it_all() {
    let inline = config(&[
        (TABLE_NAME, "t"),
        (BUCKET_NAME, "b"),
        (CRM_TOKEN, "x"),
        (CRM_RATE_TIER, "pro"),
        (SLICE_CONCURRENCY, "4"),
    ])
    .unwrap();
    // nightly-sync and rescore run inline alone under the lease: the whole limit.
    assert_eq!(
        (inline.rate_per_slice(), inline.search_per_slice()),
        (190, 5)
    );
    // Each of the 4 slice workers that may run at once takes a quarter.
    let c = inline.for_slice_worker();
    assert_eq!(c.rate_per_slice(), 47);
    assert_eq!(c.provider_rate_per_minute(), None, "no provider configured");
    // …and so is the account's search limit: 5 per second across all slices.
    assert_eq!(c.search_per_slice(), 1);
    assert_eq!(c.pull_lanes, 5);
    assert!(
        config(&[
            (TABLE_NAME, "t"),
            (BUCKET_NAME, "b"),
            (CRM_TOKEN, "x"),
            (SLICE_CONCURRENCY, "0")
        ])
        .is_err()
    );
}

#[test]
fn the_provider_s_plan_is_shared_by_concurrent_slices_too() {
    let inline = config(&[
        (TABLE_NAME, "t"),
        (BUCKET_NAME, "b"),
        (CRM_TOKEN, "x"),
        (ENRICH_PDL_URL, "https://api.peopledatalabs.com"),
        (ENRICH_PDL_API_KEY, "k"),
        (ENRICH_PDL_RATE_PER_MINUTE, "100"),
        (SLICE_CONCURRENCY, "3"),
    ])
    .unwrap();
    assert_eq!(inline.provider_rate_per_minute(), Some(100));
    assert_eq!(
        inline.for_slice_worker().provider_rate_per_minute(),
        Some(33)
    );
}

#[test]
fn defaults() {
    let c = config(&[
        (TABLE_NAME, "t"),
        (BUCKET_NAME, "b"),
        (CRM_TOKEN, "pat-na1-7f3e"),
    ])
    .unwrap();
    assert_eq!(
        (c.page_size, c.lookback, c.index_lag),
        (200, Duration::minutes(10), Duration::minutes(2))
    );
    assert!(
        !format!("{c:?}").contains("pat-na1-7f3e"),
        "the token never shows in Debug output"
    );
}
