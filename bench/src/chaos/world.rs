//! The chaos bench's world: the stores (moto), the CRM sandbox and the functions' processes one
//! night runs against, and what the stores hold at its end, normalised for comparison.

use super::*;

/// One world: a sandbox of the seeded contacts and a fresh table and bucket.
pub(crate) struct World {
    pub(crate) sandbox: Sandbox,
    pub(crate) table: String,
    pub(crate) dynamo: aws_sdk_dynamodb::Client,
    /// Extra environment for the function (enrichment, …).
    pub(crate) extra: Vec<(&'static str, String)>,
    /// The slice queue of a fanned-out night.
    pub(crate) queue_url: Option<String>,
}

pub(crate) async fn world(
    moto: &leadsync_localstack::MotoServer,
    seed: u64,
    contacts: u64,
) -> anyhow::Result<World> {
    let sdk = moto.sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let table = leadsync_localstack::unique_name("chaos");
    leadsync_store::bootstrap::create_table(&dynamo, &table).await?;
    leadsync_store::bootstrap::create_bucket(&s3, &table).await?;
    let mut config = SandboxConfig::new(seed, contacts);
    config.limits.daily = u64::MAX;
    Ok(World {
        sandbox: Sandbox::start(config).await?,
        table,
        dynamo,
        extra: Vec::new(),
        queue_url: None,
    })
}

impl World {
    pub(super) fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("TABLE_NAME", self.table.clone()),
            ("BUCKET_NAME", self.table.clone()),
            ("CRM_BASE_URL", self.sandbox.base_url()),
            ("CRM_TOKEN", self.sandbox.token().to_owned()),
            ("CRM_RATE_TIER", "pro".to_owned()),
            ("INLINE_MAX_CONTACTS", "10000000".to_owned()),
            // A killed night's lease is taken over by its own retry (same run id) at once.
            ("LEASE_MINUTES", "20".to_owned()),
        ];
        env.extend(self.extra.iter().cloned());
        env
    }

    /// Every item of the table, normalised, by (pk, sk).
    pub(crate) async fn items(&self) -> anyhow::Result<BTreeMap<(String, String), String>> {
        let mut out = BTreeMap::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .dynamo
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take())
                .send()
                .await?;
            for item in page.items() {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                let (Some(pk), Some(sk)) = (text("pk"), text("sk")) else {
                    continue;
                };
                if pk == "LOCK#sync" {
                    continue;
                }
                let mut item = item.clone();
                for (prefix, attributes) in EXCLUDED_BY_ITEM {
                    if pk.starts_with(prefix) {
                        item.retain(|k, _| !attributes.contains(&k.as_str()));
                    }
                }
                out.insert((pk, sk), normalised(&item));
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// A lead's line in the night's snapshots (its inputs and scorecard as scored last), for
    /// saying why a state differs.
    pub(crate) async fn snapshot_line(&self, moto_endpoint: &str, lead: &str) -> Option<String> {
        let sdk = leadsync_localstack::sdk_config_for(moto_endpoint).await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let store = leadsync_store::s3::S3SnapshotStore::new(s3, self.table.clone());
        for object in store.list("snapshots/").await.ok()? {
            for line in store.read_snapshot(&object.key).await.ok()? {
                if line.lead.id.as_str() == lead {
                    return serde_json::to_string(&line.lead).ok();
                }
            }
        }
        None
    }

    /// Each contact's leadsync properties.
    pub(crate) fn crm(&self) -> BTreeMap<u64, BTreeMap<String, String>> {
        self.sandbox
            .contacts()
            .into_iter()
            .map(|c| {
                let ours = c
                    .properties
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("leadsync_"))
                    .collect();
                (c.id, ours)
            })
            .collect()
    }

    pub(crate) fn crm_writes(&self) -> i64 {
        let counts = self.sandbox.request_counts();
        counts
            .get("POST /crm/v3/objects/contacts/batch/update")
            .copied()
            .unwrap_or(0) as i64
    }

    /// Where a killed night stopped, from what it left behind.
    pub(super) async fn point(&self, clean_items: usize) -> anyhow::Result<String> {
        let items = self.items().await?;
        let count = |prefix: &str| {
            items
                .keys()
                .filter(|(pk, _)| pk.starts_with(prefix))
                .count()
        };
        let states = items.keys().filter(|(_, sk)| sk == "STATE").count();
        let writes = self.crm_writes();
        let finished = run_finished(&items);
        Ok(if items.is_empty() {
            "starting (nothing written)".to_owned()
        } else if finished {
            "answering (run finished)".to_owned()
        } else if count("ROLLUP#") > 0 {
            format!("rollups ({} of {clean_items} items)", items.len())
        } else if writes > 0 {
            format!("pushing ({states} states, {writes} CRM writes)")
        } else if states > 0 {
            format!("recording ({states} states)")
        } else {
            "planning (run recorded)".to_owned()
        })
    }
}

/// Whether the night's run is marked finished (its plan item's `finished`, a DynamoDB BOOL, as
/// [`normalised`] writes it).
pub(super) fn run_finished(items: &BTreeMap<(String, String), String>) -> bool {
    items.iter().any(|((pk, sk), body)| {
        pk.starts_with("RUN#") && sk == "PLAN" && body.contains(r#""finished":"Bool(true)""#)
    })
}

/// An item as comparable text: attributes sorted, wall-clock keys removed (also inside JSON
/// bodies).
pub(super) fn normalised(item: &HashMap<String, AttributeValue>) -> String {
    let mut attrs: BTreeMap<&str, String> = BTreeMap::new();
    for (k, v) in item {
        if EXCLUDED_KEYS.contains(&k.as_str()) {
            continue;
        }
        let text = match v {
            AttributeValue::S(s) => match serde_json::from_str::<serde_json::Value>(s) {
                Ok(mut json) if json.is_object() => {
                    strip(&mut json);
                    json.to_string()
                }
                _ => s.clone(),
            },
            AttributeValue::N(n) => format!("N:{n}"),
            other => format!("{other:?}"),
        };
        attrs.insert(k, text);
    }
    serde_json::to_string(&attrs).unwrap_or_default()
}

pub(super) fn strip(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| !EXCLUDED_KEYS.contains(&k.as_str()));
            map.values_mut().for_each(strip);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

/// A function binary the bench runs must have been built.
///
/// # Errors
/// It is missing, with the command that builds it.
pub(crate) fn require(binary: &Path) -> anyhow::Result<()> {
    if !binary.exists() {
        bail!(
            "{} is missing (build it first: cargo build --release --workspace --bins)",
            binary.display()
        );
    }
    Ok(())
}

pub(crate) fn night() -> serde_json::Value {
    serde_json::json!({ "scheduled_time": NIGHT })
}

/// Start `binary` for `world` (AWS at `aws`: moto, or a proxy in front of it) and wait for
/// its first poll.
pub(crate) async fn start(
    binary: &Path,
    api: &RuntimeApi,
    aws: &str,
    world: &World,
) -> anyhow::Result<FunctionProcess> {
    let process = FunctionProcess::spawn(&binary.display().to_string(), api, aws, &world.env())?;
    api.first_poll(Duration::from_secs(60))
        .await
        .map_err(|e| anyhow::anyhow!("{} did not start: {e}", binary.display()))?;
    Ok(process)
}
