//! `infra/template.yaml`, read as data: least privilege (no IAM action with a `*`), every
//! function on arm64/provided.al2023 with its own log group and an errors alarm, every queue's
//! dead letters alarmed. cfn-lint (in `.ci/run`) checks the schema; this checks our rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_yaml::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/template.yaml"
    ))
    .expect("infra/template.yaml");
    serde_yaml::from_str(&text).expect("the template is YAML")
}

/// Every `Action`/`NotAction` value anywhere in the document, with where it was found.
fn actions(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let key = k.as_str().unwrap_or("?");
                let here = format!("{path}/{key}");
                if key == "Action" || key == "NotAction" {
                    let list: Vec<&Value> = match v {
                        Value::Sequence(items) => items.iter().collect(),
                        other => vec![other],
                    };
                    for item in list {
                        out.push((
                            here.clone(),
                            item.as_str().unwrap_or("<not a string>").to_owned(),
                        ));
                    }
                } else {
                    actions(v, &here, out);
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                actions(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Tagged(tagged) => actions(&tagged.value, path, out),
        _ => {}
    }
}

fn resources(t: &Value) -> Vec<(String, &Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v))
        .collect()
}

#[test]
fn no_iam_action_has_a_wildcard() {
    let t = template();
    let mut found = Vec::new();
    actions(&t["Resources"], "Resources", &mut found);
    assert!(
        found.len() > 20,
        "the walk found only {} actions",
        found.len()
    );
    let wild: Vec<&(String, String)> = found.iter().filter(|(_, a)| a.contains('*')).collect();
    assert!(wild.is_empty(), "wildcard actions: {wild:?}");
    // Neither may a function use SAM's broad policy templates (which hide wildcards).
    for (name, r) in resources(&t) {
        if let Some(policies) = r["Properties"]["Policies"].as_sequence() {
            for p in policies {
                assert!(
                    p.is_mapping() && p.get("Statement").is_some(),
                    "{name}: only inline statements, got {p:?}"
                );
            }
        }
    }
}

#[test]
fn every_function_is_arm64_with_a_log_group_and_an_errors_alarm() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Architectures"][0].as_str(), Some("arm64"));
    assert_eq!(globals["LoggingConfig"]["LogFormat"].as_str(), Some("JSON"));
    let all = resources(&t);
    let functions: Vec<&String> = all
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(n, _)| n)
        .collect();
    for wanted in [
        "NightlySyncFunction",
        "SyncSliceFunction",
        "RescoreFunction",
        "RescoreWebhookFunction",
        "RollupsApiFunction",
    ] {
        assert!(functions.iter().any(|f| *f == wanted), "{wanted} missing");
    }
    let text = serde_yaml::to_string(&t).unwrap();
    for f in functions {
        let props = &all.iter().find(|(n, _)| n == f).unwrap().1["Properties"];
        assert!(
            matches!(props["LoggingConfig"]["LogGroup"], Value::Tagged(_)),
            "{f}: own log group"
        );
        assert!(props["Timeout"].as_u64().is_some(), "{f}: explicit timeout");
        let alarm = f.replace("Function", "ErrorsAlarm");
        assert!(
            all.iter()
                .any(|(n, r)| *n == alarm && r["Type"].as_str() == Some("AWS::CloudWatch::Alarm")),
            "{f}: no {alarm}"
        );
    }
    assert!(
        text.contains("ReportBatchItemFailures"),
        "the slice worker reports partial batch failures"
    );
}

#[test]
fn queues_have_dead_letters_and_the_dead_letters_are_watched() {
    let t = template();
    let all = resources(&t);
    let queue = &all.iter().find(|(n, _)| n == "SliceQueue").unwrap().1["Properties"];
    assert!(queue["RedrivePolicy"]["maxReceiveCount"].as_u64().is_some());
    let alarm = &all
        .iter()
        .find(|(n, _)| n == "SliceDeadLetterAlarm")
        .unwrap()
        .1["Properties"];
    assert_eq!(
        alarm["MetricName"].as_str(),
        Some("ApproximateNumberOfMessagesVisible")
    );
    let table = &all.iter().find(|(n, _)| n == "LeadsTable").unwrap().1["Properties"];
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some("expires_at")
    );
}

/// The `Action`s a resource's policies allow, with the resources they name (as YAML text).
fn allowed(resource: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut visit = |doc: &Value| {
        for st in doc["Statement"].as_sequence().into_iter().flatten() {
            let names: Vec<String> = match &st["Action"] {
                Value::Sequence(items) => items
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect(),
                other => other.as_str().map(str::to_owned).into_iter().collect(),
            };
            let target = serde_yaml::to_string(&st["Resource"]).unwrap_or_default();
            for a in names {
                out.push((a, target.clone()));
            }
        }
    };
    let p = &resource["Properties"];
    visit(&p["PolicyDocument"]);
    for policy in p["Policies"].as_sequence().into_iter().flatten() {
        visit(policy);
    }
    out
}

#[test]
fn finance_reading_and_closing_are_separate_permissions() {
    let t = template();
    let r = &t["Resources"];
    // The read URL's function can only read the table, and says so to the binary.
    let read = &r["RollupsApiFunction"];
    assert_eq!(
        read["Properties"]["Environment"]["Variables"]["ROLLUPS_API_ACCESS"].as_str(),
        Some("read")
    );
    let writes = [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "s3:PutObject",
    ];
    for (action, _) in allowed(read) {
        assert!(
            !writes.contains(&action.as_str()),
            "the read URL may {action}"
        );
    }
    let admin = &r["RollupsAdminFunction"];
    assert_eq!(
        admin["Properties"]["Environment"]["Variables"]["ROLLUPS_API_ACCESS"].as_str(),
        Some("write")
    );
    assert!(
        allowed(admin)
            .iter()
            .any(|(a, _)| a == "dynamodb:UpdateItem")
    );
    for url in [read, admin] {
        assert_eq!(
            url["Properties"]["FunctionUrlConfig"]["AuthType"].as_str(),
            Some("AWS_IAM")
        );
    }
    // The read-only role can invoke the read URL and nothing that closes a period.
    let role = &r["FinanceReadOnlyRole"];
    let policies: Vec<String> = role["Properties"]["ManagedPolicyArns"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| serde_yaml::to_string(p).unwrap())
        .collect();
    assert_eq!(policies.len(), 1, "{policies:?}");
    assert!(policies[0].contains("FinanceReadPolicy"));
    // It invokes the read URL alone, reads the Athena exports, and writes nowhere but the
    // workgroup's query results.
    let granted = allowed(&r["FinanceReadPolicy"]);
    let invokes: Vec<_> = granted
        .iter()
        .filter(|(a, _)| a.starts_with("lambda:"))
        .collect();
    assert_eq!(invokes.len(), 1, "{invokes:?}");
    assert_eq!(invokes[0].0, "lambda:InvokeFunctionUrl");
    assert!(invokes[0].1.contains("RollupsApiFunction") && !invokes[0].1.contains("Admin"));
    for (action, target) in &granted {
        let service = action.split(':').next().unwrap();
        assert!(
            ["lambda", "athena", "glue", "s3"].contains(&service),
            "the read policy grants {action}"
        );
        assert!(
            !action.starts_with("dynamodb:") && !action.starts_with("glue:Update"),
            "{action}"
        );
        if action == "s3:PutObject" {
            assert!(
                target.contains("/athena-results/*"),
                "the read policy may put objects in {target}"
            );
        }
        if action == "s3:GetObject" {
            assert!(
                target.contains("/athena/*") || target.contains("/athena-results/*"),
                "the read policy reads {target}"
            );
        }
    }
    assert!(
        granted
            .iter()
            .any(|(a, t)| a == "athena:StartQueryExecution" && t.contains("FinanceWorkGroup"))
    );
    let close = allowed(&r["FinanceClosePolicy"]);
    assert!(
        close
            .iter()
            .all(|(_, target)| target.contains("RollupsAdminFunction"))
    );
    let closer: Vec<String> = r["FinanceCloserRole"]["Properties"]["ManagedPolicyArns"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| serde_yaml::to_string(p).unwrap())
        .collect();
    assert!(closer.iter().any(|p| p.contains("FinanceClosePolicy")));
}

/// A `!Sub`/`!Ref` value's text (the tag dropped).
fn text(v: &Value) -> String {
    match v {
        Value::Tagged(tagged) => text(&tagged.value),
        other => other.as_str().unwrap_or_default().to_owned(),
    }
}

#[test]
fn the_glue_tables_read_exactly_what_the_exports_write() {
    use leadsync_pipeline::parquet_export;
    let t = template();
    let r = &t["Resources"];
    // Files of each table as the export writes them (empty: the schema is what matters).
    let files = [
        (
            "FinanceIncentivesTable",
            "incentives",
            parquet_export::incentives("2026-11", "2026.11.1", "USD", &[]).unwrap(),
        ),
        (
            "FinanceStatementsTable",
            "statements",
            parquet_export::statements("2026-11", "USD", &[]).unwrap(),
        ),
        (
            "FinanceKpisTable",
            "kpis",
            parquet_export::kpis("2026-11", "2026.11.1", &[]).unwrap(),
        ),
    ];
    let key = leadsync_store::s3::athena_object_key("kpis", "2026-11", "2026.11.1");
    assert_eq!(key, "athena/kpis/period=2026-11/2026.11.1.parquet");
    for (resource, table, file) in files {
        let glue = &r[resource];
        assert_eq!(
            glue["Type"].as_str(),
            Some("AWS::Glue::Table"),
            "{resource}"
        );
        assert_eq!(
            text(&glue["Properties"]["DatabaseName"]),
            "FinanceGlueDatabase"
        );
        let input = &glue["Properties"]["TableInput"];
        assert_eq!(input["Name"].as_str(), Some(table));
        let storage = &input["StorageDescriptor"];
        assert!(
            storage["SerdeInfo"]["SerializationLibrary"]
                .as_str()
                .unwrap()
                .ends_with("ParquetHiveSerDe")
        );
        // Where the store writes: athena/<table>/period=<period>/<version>.parquet.
        let location = text(&storage["Location"]);
        assert_eq!(location, format!("s3://${{DataBucket}}/athena/{table}/"));
        let written = leadsync_store::s3::athena_object_key(table, "2026-11", "v");
        assert!(written.starts_with(&format!("athena/{table}/period=2026-11/")));
        let params = &input["Parameters"];
        assert_eq!(
            text(&params["storage.location.template"]),
            format!("s3://${{DataBucket}}/athena/{table}/period=${{!period}}/")
        );
        assert_eq!(params["projection.enabled"].as_str(), Some("true"));
        assert_eq!(params["projection.period.format"].as_str(), Some("yyyy-MM"));
        let partitions: Vec<(String, String)> = input["PartitionKeys"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| (text(&c["Name"]), text(&c["Type"])))
            .collect();
        assert_eq!(partitions, [("period".to_owned(), "string".to_owned())]);
        // The columns, in order and typed as Athena reads the file; `period` is the partition.
        let declared: Vec<(String, String)> = storage["Columns"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| (text(&c["Name"]), text(&c["Type"])))
            .collect();
        let in_file: Vec<(String, String)> = parquet_export::athena_columns(&file)
            .unwrap()
            .into_iter()
            .filter(|(name, _)| name != "period")
            .collect();
        assert_eq!(
            declared, in_file,
            "{resource} declares other columns than the file"
        );
    }
    // The prepared statements name the tables they read and the workgroup they run in.
    for (resource, table) in [
        ("FinanceOwnerTotalsStatement", "incentives"),
        ("FinanceOwnerStatementStatement", "statements"),
        ("FinanceReconcileStatement", "statements"),
    ] {
        let p = &r[resource]["Properties"];
        assert_eq!(text(&p["WorkGroup"]), "FinanceWorkGroup");
        assert!(
            text(&p["QueryStatement"]).contains(&format!("\"${{GlueDatabaseName}}\".\"{table}\"")),
            "{resource}"
        );
    }
}

#[test]
fn every_function_that_reads_the_crm_or_its_rows_knows_which_crm_it_serves() {
    let t = template();
    let r = &t["Resources"];
    let mut syncing = 0;
    for (name, resource) in resources(&t) {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let vars = &resource["Properties"]["Environment"]["Variables"];
        let reads_table = !vars["TABLE_NAME"].is_null();
        if reads_table {
            assert_eq!(text(&vars["CRM_KIND"]), "CrmKind", "{name} lacks CRM_KIND");
        }
        if !vars["CRM_TOKEN_SECRET_ARN"].is_null() {
            syncing += 1;
            for key in [
                "SF_CLIENT_ID",
                "SF_CLIENT_SECRET_ARN",
                "SF_USERNAME",
                "SF_PRIVATE_KEY_ARN",
                "SF_JWT_AUDIENCE",
                "SF_DAILY_BUDGET_SHARE",
            ] {
                assert!(!vars[key].is_null(), "{name} lacks {key}");
            }
            // The secret is the consumer secret, or with a username the JWT private key:
            // exactly one of the two variables names it.
            let choice = |key: &str| {
                let Value::Tagged(t) = &vars[key] else {
                    panic!("{name}: {key} is not an !If");
                };
                let arms: Vec<String> = t.value.as_sequence().unwrap().iter().map(text).collect();
                arms
            };
            assert_eq!(
                choice("SF_CLIENT_SECRET_ARN"),
                ["UsesSalesforceJwt", "", "CrmTokenSecret"],
                "{name}"
            );
            assert_eq!(
                choice("SF_PRIVATE_KEY_ARN"),
                ["UsesSalesforceJwt", "CrmTokenSecret", ""],
                "{name}"
            );
            assert_eq!(text(&vars["SF_USERNAME"]), "SalesforceUsername");
        }
    }
    assert!(syncing >= 4, "{syncing}");
    let kinds: Vec<&str> = t["Parameters"]["CrmKind"]["AllowedValues"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(kinds, ["hubspot", "salesforce"]);
    assert!(!t["Rules"]["SalesforceNeedsItsOrg"].is_null());
    assert!(!r["CrmTokenSecret"].is_null());
}

#[test]
fn every_syncing_function_may_put_news_on_the_bus_and_the_example_route_is_off() {
    let t = template();
    let mut syncing = 0;
    for (name, resource) in resources(&t) {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let vars = &resource["Properties"]["Environment"]["Variables"];
        if vars["CRM_TOKEN_SECRET_ARN"].is_null() {
            continue;
        }
        syncing += 1;
        assert_eq!(text(&vars["EVENT_BUS_NAME"]), "NewsBusName", "{name}");
        let puts: Vec<String> = allowed(resource)
            .into_iter()
            .filter(|(a, _)| a == "events:PutEvents")
            .map(|(_, r)| r)
            .collect();
        assert_eq!(puts.len(), 1, "{name}: {puts:?}");
        assert!(
            puts[0].contains("event-bus/${NewsBusName}"),
            "{name}: {puts:?}"
        );
    }
    assert_eq!(syncing, 4);
    let rule = &t["Resources"]["NewSqlRule"]["Properties"];
    assert_eq!(rule["State"].as_str(), Some("DISABLED"));
    assert_eq!(text(&rule["EventBusName"]), "NewsBusName");
    assert_eq!(rule["EventPattern"]["source"][0].as_str(), Some("leadsync"));
    assert_eq!(
        rule["EventPattern"]["detail-type"][0].as_str(),
        Some(leadsync_domain::news::LeadEventKind::Sql.detail_type())
    );
}

/// Every key `Config::from_lookup` reads, over a HubSpot and both Salesforce setups (each
/// branch reads its own keys).
fn keys_config_reads() -> std::collections::BTreeSet<String> {
    use leadsync_app::config as c;
    let read = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let setups: [&[(&str, &str)]; 3] = [
        &[(c::ENRICH_PDL_URL, "https://api.example.com")],
        &[
            (c::CRM_KIND, "salesforce"),
            (c::CRM_BASE_URL, "https://acme.my.salesforce.com"),
        ],
        &[
            (c::CRM_KIND, "salesforce"),
            (c::CRM_BASE_URL, "https://acme.my.salesforce.com"),
            (c::SF_USERNAME, "integration@acme.example"),
        ],
    ];
    for setup in setups {
        leadsync_app::Config::from_lookup(|key| {
            read.borrow_mut().insert(key.to_owned());
            let value = setup.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
            Some(value.unwrap_or(match key {
                // Numbers and names that parse for every key; the rest left empty.
                c::TABLE_NAME | c::BUCKET_NAME | c::SF_CLIENT_ID => "x",
                c::CRM_TOKEN | c::SF_CLIENT_SECRET | c::SF_PRIVATE_KEY => "secret",
                c::ENRICH_PDL_API_KEY => "key",
                _ => "",
            }))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
        })
        .unwrap();
    }
    read.into_inner()
}

/// Keys a function reads that a deployment must not set, and why.
const LOCAL_ONLY: &[(&str, &str)] = &[
    (
        "CRM_TOKEN",
        "a secret's value: deployed, the function reads CRM_TOKEN_SECRET_ARN",
    ),
    (
        "SF_CLIENT_SECRET",
        "a secret's value: deployed, SF_CLIENT_SECRET_ARN",
    ),
    (
        "SF_PRIVATE_KEY",
        "a secret's value: deployed, SF_PRIVATE_KEY_ARN",
    ),
    (
        "ENRICH_PDL_API_KEY",
        "a secret's value: deployed, ENRICH_PDL_API_KEY_SECRET_ARN",
    ),
    (
        "HUBSPOT_APP_SECRET",
        "a secret's value: deployed, HUBSPOT_APP_SECRET_ARN",
    ),
    (
        "CRITERIA_FILE",
        "a local file; deployed, criteria are published to S3 and read from there",
    ),
];

/// Keys only some syncing functions need.
const ONLY_IN: &[(&str, &[&str])] = &[
    ("HUBSPOT_APP_SECRET_ARN", &["RescoreWebhookFunction"]),
    (
        "RESCORE_WAIT_SECONDS",
        &["RescoreFunction", "RescoreWebhookFunction"],
    ),
];

#[test]
fn every_setting_the_functions_read_is_a_template_parameter_and_every_variable_is_read() {
    let read = keys_config_reads();
    let documented: std::collections::BTreeSet<String> = leadsync_app::config::KEYS
        .iter()
        .map(|(k, _)| (*k).to_owned())
        .chain(
            // Documented beside their ARN twins.
            [
                "SF_CLIENT_SECRET_ARN",
                "SF_PRIVATE_KEY_ARN",
                "HUBSPOT_APP_SECRET_ARN",
            ]
            .map(str::to_owned),
        )
        .collect();
    assert_eq!(
        read.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "read but not in config::KEYS (the --help and README list)"
    );
    let t = template();
    let mut syncing = 0;
    for (name, resource) in resources(&t) {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let vars = resource["Properties"]["Environment"]["Variables"]
            .as_mapping()
            .unwrap();
        let set: std::collections::BTreeSet<String> = vars
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        if !set.contains("CRM_TOKEN_SECRET_ARN") {
            continue; // the rollups functions read only the table and bucket
        }
        syncing += 1;
        for key in &read {
            let local = LOCAL_ONLY.iter().any(|(k, _)| k == key);
            let wanted = ONLY_IN
                .iter()
                .find(|(k, _)| k == key)
                .is_none_or(|(_, only)| only.contains(&name.as_str()));
            if local {
                assert!(!set.contains(key), "{name} sets {key}, which is local-only");
            } else if wanted {
                assert!(
                    set.contains(key),
                    "{name} does not set {key}: not deployable"
                );
            }
        }
        for key in &set {
            assert!(
                read.contains(key),
                "{name} sets {key}, which no function reads"
            );
        }
        // Every value comes from a parameter or a resource of the stack, not a literal.
        for (key, value) in vars {
            assert!(
                matches!(value, Value::Tagged(_)),
                "{name}: {} is the literal {value:?}, not a parameter",
                key.as_str().unwrap()
            );
        }
    }
    assert_eq!(syncing, 4);
}

/// Issue 19 (privacy): every prefix that holds people's records expires after the configured
/// retention, and its replaced or erased versions a day later.
#[test]
fn personal_data_in_the_bucket_expires_after_the_configured_retention() {
    let t = template();
    let retention = &t["Parameters"]["PersonalDataRetentionDays"];
    assert_eq!(retention["Type"].as_str(), Some("Number"));
    assert!(
        retention["Default"]
            .as_u64()
            .is_some_and(|d| (1..=3650).contains(&d))
    );
    let rules = t["Resources"]["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_sequence()
        .expect("lifecycle rules");
    for prefix in ["snapshots/", "quarantine/"] {
        let rule = rules
            .iter()
            .find(|r| r["Prefix"].as_str() == Some(prefix))
            .unwrap_or_else(|| panic!("no lifecycle rule for {prefix}"));
        assert_eq!(rule["Status"].as_str(), Some("Enabled"), "{prefix}");
        match &rule["ExpirationInDays"] {
            Value::Tagged(tag) => {
                assert_eq!(tag.tag.to_string(), "!Ref", "{prefix}");
                assert_eq!(
                    tag.value.as_str(),
                    Some("PersonalDataRetentionDays"),
                    "{prefix}"
                );
            }
            other => panic!("{prefix} expires on {other:?}, not the retention parameter"),
        }
        assert_eq!(
            rule["NoncurrentVersionExpiration"]["NoncurrentDays"].as_u64(),
            Some(1),
            "{prefix}"
        );
    }
}
