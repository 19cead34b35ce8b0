//! The environment keys the functions read, each with what it means: the names the code uses
//! and the table `--help` and the docs print.

pub const TABLE_NAME: &str = "TABLE_NAME";
pub const BUCKET_NAME: &str = "BUCKET_NAME";
pub const CRM_KIND: &str = "CRM_KIND";
pub const CRM_BASE_URL: &str = "CRM_BASE_URL";
pub const CRM_TOKEN: &str = "CRM_TOKEN";
pub const SF_CLIENT_ID: &str = "SF_CLIENT_ID";
pub const SF_CLIENT_SECRET: &str = "SF_CLIENT_SECRET";
pub const SF_CLIENT_SECRET_ARN: &str = "SF_CLIENT_SECRET_ARN";
pub const SF_DAILY_BUDGET_SHARE: &str = "SF_DAILY_BUDGET_SHARE";
pub const SF_PAGE_SIZE: &str = "SF_PAGE_SIZE";
pub const SF_BULK_THRESHOLD: &str = "SF_BULK_THRESHOLD";
pub const SF_USERNAME: &str = "SF_USERNAME";
pub const SF_PRIVATE_KEY: &str = "SF_PRIVATE_KEY";
pub const SF_PRIVATE_KEY_ARN: &str = "SF_PRIVATE_KEY_ARN";
pub const SF_JWT_AUDIENCE: &str = "SF_JWT_AUDIENCE";
pub const CRM_PAGE_SIZE: &str = "CRM_PAGE_SIZE";
pub const CRM_PULL_LANES: &str = "CRM_PULL_LANES";
pub const CRM_RATE_TIER: &str = "CRM_RATE_TIER";
pub const CRITERIA_FILE: &str = "CRITERIA_FILE";
pub const LOOKBACK_MINUTES: &str = "LOOKBACK_MINUTES";
pub const INDEX_LAG_MINUTES: &str = "INDEX_LAG_MINUTES";
pub const MAX_REJECT_RATIO: &str = "MAX_REJECT_RATIO";
pub const ENRICH_PDL_URL: &str = "ENRICH_PDL_URL";
pub const ENRICH_PDL_API_KEY: &str = "ENRICH_PDL_API_KEY";
pub const ENRICH_MIN_LIKELIHOOD: &str = "ENRICH_MIN_LIKELIHOOD";
pub const ENRICH_PDL_RATE_PER_MINUTE: &str = "ENRICH_PDL_RATE_PER_MINUTE";
pub const ENRICH_CACHE_DAYS: &str = "ENRICH_CACHE_DAYS";
pub const ENRICH_HOLD_HOURS: &str = "ENRICH_HOLD_HOURS";
pub const ENRICH_BUDGET_CREDITS: &str = "ENRICH_BUDGET_CREDITS";
pub const ENRICH_DATASET_KEY: &str = "ENRICH_DATASET_KEY";
pub const CRM_TOKEN_SECRET_ARN: &str = "CRM_TOKEN_SECRET_ARN";
pub const ENRICH_PDL_API_KEY_SECRET_ARN: &str = "ENRICH_PDL_API_KEY_SECRET_ARN";
pub const SLICE_QUEUE_URL: &str = "SLICE_QUEUE_URL";
pub const EVENT_BUS_NAME: &str = "EVENT_BUS_NAME";
pub const INLINE_MAX_CONTACTS: &str = "INLINE_MAX_CONTACTS";
pub const SLICE_CONTACTS: &str = "SLICE_CONTACTS";
pub const SLICE_CONCURRENCY: &str = "SLICE_CONCURRENCY";
pub const LEASE_MINUTES: &str = "LEASE_MINUTES";
pub const HUBSPOT_APP_SECRET: &str = "HUBSPOT_APP_SECRET";
pub const HUBSPOT_APP_SECRET_ARN: &str = "HUBSPOT_APP_SECRET_ARN";
pub const RESCORE_WAIT_SECONDS: &str = "RESCORE_WAIT_SECONDS";
pub const RESCORE_RETRY_SECONDS: &str = "RESCORE_RETRY_SECONDS";

/// Every key this function reads, for documentation and `--help` output.
pub const KEYS: &[(&str, &str)] = &[
    (TABLE_NAME, "DynamoDB table (required)"),
    (
        BUCKET_NAME,
        "S3 bucket for snapshots and quarantine (required)",
    ),
    (CRM_KIND, "the CRM: hubspot (default) or salesforce"),
    (
        CRM_BASE_URL,
        "HubSpot API base URL (default https://api.hubapi.com); Salesforce: the org's My Domain login URL (required)",
    ),
    (
        SF_CLIENT_ID,
        "Salesforce: the connected app's consumer key (required with CRM_KIND=salesforce)",
    ),
    (
        SF_CLIENT_SECRET,
        "Salesforce: its consumer secret (local runs; or SF_CLIENT_SECRET_ARN)",
    ),
    (
        SF_DAILY_BUDGET_SHARE,
        "Salesforce: share of the org's daily API allocation a run may use, 0-1 (default 0.5)",
    ),
    (
        SF_PAGE_SIZE,
        "Salesforce: records per query page, 200-2000 (default 2000)",
    ),
    (
        SF_USERNAME,
        "Salesforce: set for the JWT bearer flow, the pre-authorized user the session acts as",
    ),
    (
        SF_PRIVATE_KEY,
        "Salesforce JWT bearer flow: the private key, PEM (local runs; or SF_PRIVATE_KEY_ARN)",
    ),
    (
        SF_JWT_AUDIENCE,
        "Salesforce JWT bearer flow: the assertion's audience (default https://login.salesforce.com)",
    ),
    (
        SF_BULK_THRESHOLD,
        "Salesforce: a first sync of at least this many Leads in a scope reads them through a Bulk API 2.0 query job; 0 never (default 10000)",
    ),
    (
        CRM_TOKEN,
        "HubSpot private-app token (local runs; or CRM_TOKEN_SECRET_ARN)",
    ),
    (
        CRM_TOKEN_SECRET_ARN,
        "Secrets Manager ARN of the HubSpot token, fetched at cold start",
    ),
    (
        SLICE_QUEUE_URL,
        "SQS queue for slices of a fanned-out run (without it every run is inline)",
    ),
    (
        EVENT_BUS_NAME,
        "EventBridge bus for news about leads (a lead reached SQL, sales rejected one); without it none is sent",
    ),
    (
        INLINE_MAX_CONTACTS,
        "run inline up to this many contacts, fan out above (default 20000)",
    ),
    (
        SLICE_CONTACTS,
        "about this many contacts per slice (default 20000)",
    ),
    (
        SLICE_CONCURRENCY,
        "slices running at once (the queue's maximum concurrency); each slice worker gets 1/N of the CRM rate, an inline run all of it (default 1)",
    ),
    (
        HUBSPOT_APP_SECRET,
        "rescore webhook: the HubSpot app's client secret, to verify X-HubSpot-Signature-v3 (or HUBSPOT_APP_SECRET_ARN)",
    ),
    (
        RESCORE_WAIT_SECONDS,
        "rescore: wait this long for a busy lease before answering busy (default 10)",
    ),
    (
        RESCORE_RETRY_SECONDS,
        "a queued re-score that finds the lease held comes back after this, doubled per attempt up to 900, for 24 h (default 60)",
    ),
    (
        LEASE_MINUTES,
        "a run's lease lasts this long unless renewed by a slice (default 20)",
    ),
    (CRM_PAGE_SIZE, "search page size 1-200 (default 200)"),
    (
        CRM_PULL_LANES,
        "id ranges one walk searches at once, 1-8 (default 4)",
    ),
    (
        CRM_RATE_TIER,
        "HubSpot API limit tier: free (100 per 10 s) or pro (190 per 10 s); default free",
    ),
    (
        CRITERIA_FILE,
        "criteria TOML file (default: the bundled example agreement)",
    ),
    (
        LOOKBACK_MINUTES,
        "re-read this far behind the watermark (default 10)",
    ),
    (
        INDEX_LAG_MINUTES,
        "keep the watermark this far behind now (default 2)",
    ),
    (
        MAX_REJECT_RATIO,
        "fail the run above this share of quarantined records (default 0.2)",
    ),
    (
        ENRICH_PDL_URL,
        "People Data Labs-compatible enrichment API base URL (enrichment off when unset)",
    ),
    (
        ENRICH_PDL_API_KEY,
        "its API key (or ENRICH_PDL_API_KEY_SECRET_ARN; one is required with ENRICH_PDL_URL)",
    ),
    (
        ENRICH_PDL_API_KEY_SECRET_ARN,
        "Secrets Manager ARN of the provider key, fetched at cold start",
    ),
    (
        ENRICH_MIN_LIKELIHOOD,
        "ignore matches below this likelihood, 1-10 (default 6)",
    ),
    (
        ENRICH_PDL_RATE_PER_MINUTE,
        "the provider plan's request limit per minute, kept client-side (PDL: 10 free, 1000 paid; default 1000)",
    ),
    (
        ENRICH_CACHE_DAYS,
        "keep provider matches this many days in the cache (default 30)",
    ),
    (
        ENRICH_BUDGET_CREDITS,
        "provider credits one run may spend (default: no limit)",
    ),
    (
        ENRICH_HOLD_HOURS,
        "a nightly run starting to read within this many hours of now (or a first sync) holds leads a provider could not enrich for a passing reason for the next run, rather than scoring them without (default 48; 0: never)",
    ),
    (
        ENRICH_DATASET_KEY,
        "S3 key (in BUCKET_NAME) of a .jsonl or .csv firmographic dataset, asked first (optional)",
    ),
];
