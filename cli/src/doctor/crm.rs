//! The CRM's checks: the token, its scopes and rate tier, and the properties leadsync reads
//! and writes.

use super::*;

pub(super) async fn crm_checks(
    crm: &AnyCrm,
    config: &Config,
    criteria: Option<&Criteria>,
    checks: &mut Vec<Check>,
) {
    match crm {
        AnyCrm::HubSpot(hubspot) => {
            let token = hubspot.token_info().await;
            let scopes_ok = match &token {
                Ok(info) => {
                    checks.push(Check::ok(
                        "crm token",
                        format!(
                            "HubSpot account {} (private app {}), {} scopes",
                            info.hub_id.map_or("?".to_owned(), |h| h.to_string()),
                            info.app_id.map_or("?".to_owned(), |a| a.to_string()),
                            info.scopes.len()
                        ),
                    ));
                    let missing = info.missing();
                    if missing.is_empty() {
                        checks.push(Check::ok(
                            "crm scopes",
                            format!(
                                "all {} scopes leadsync needs",
                                leadsync_hubspot::REQUIRED_SCOPES.len()
                            ),
                        ));
                        true
                    } else {
                        checks.push(Check::new(
                            "crm scopes",
                            Status::Fail,
                            format!(
                                "missing {}",
                                missing
                                    .iter()
                                    .map(|(scope, why)| format!("{scope} (to {why})"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            "add them in HubSpot under Settings › Integrations › Private apps › your app › Scopes, then set CRM_TOKEN to the app's token",
                        ));
                        false
                    }
                }
                Err(e) => {
                    checks.push(token_failed(e, "HubSpot"));
                    return;
                }
            };
            properties_check(crm, criteria, scopes_ok, checks).await;
            rate_check(hubspot.usage(), config, checks);
        }
        AnyCrm::Salesforce(sf) => {
            // The login and the describes every run starts with: the credentials, then every
            // field leadsync reads, checked against the integration user's view of the org.
            match sf.check_reads().await {
                Ok(()) => {
                    checks.push(Check::ok("crm token", "Salesforce login works"));
                    checks.push(Check::ok(
                        "crm properties read",
                        "every Lead, Contact, Account and Opportunity field leadsync reads is visible",
                    ));
                }
                // The adapter reports a refused login as the token endpoint's own 400 error
                // (`invalid_client`, `invalid_grant`): that is the credentials, not a field.
                Err(CrmError::Rejected { ref message, .. }) if message.contains("login") => {
                    let mut check = token_failed(&CrmError::Unauthorized, "Salesforce");
                    check.detail = format!("Salesforce: {message}");
                    checks.push(check);
                    return;
                }
                Err(e @ CrmError::Rejected { .. }) => {
                    checks.push(Check::ok("crm token", "Salesforce login works"));
                    checks.push(Check::new(
                        "crm properties read",
                        Status::Fail,
                        e.to_string(),
                        "create the fields, or grant the integration user read access to them (field-level security)",
                    ));
                }
                Err(e) => {
                    checks.push(token_failed(&e, "Salesforce"));
                    return;
                }
            }
            properties_check(crm, criteria, true, checks).await;
            let (used, allocation) = sf.api_usage();
            checks.push(if allocation == 0 {
                Check::new(
                    "crm rate tier",
                    Status::Warn,
                    "the org did not state its daily API allocation (Sforce-Limit-Info)",
                    "runs stop at SF_DAILY_BUDGET_SHARE of the allocation once the org states it",
                )
            } else {
                Check::ok(
                    "crm rate tier",
                    format!(
                        "{used} of the org's {allocation} API requests used today; a run stops at {:.0} % (SF_DAILY_BUDGET_SHARE)",
                        config
                            .salesforce
                            .as_ref()
                            .map_or(50.0, |s| s.daily_budget_share * 100.0)
                    ),
                )
            });
        }
    }
}

pub(super) fn token_failed(e: &CrmError, crm: &str) -> Check {
    let fix = match e {
        CrmError::Unauthorized => match crm {
            "HubSpot" => {
                "create a private app (Settings › Integrations › Private apps) and set CRM_TOKEN to its access token"
            }
            _ => {
                "check SF_CLIENT_ID, SF_CLIENT_SECRET (or SF_USERNAME and SF_PRIVATE_KEY) and CRM_BASE_URL (the org's My Domain URL)"
            }
        },
        _ => "check CRM_BASE_URL and the network; the CRM did not answer",
    };
    Check::new("crm token", Status::Fail, format!("{crm}: {e}"), fix)
}

/// The properties leadsync reads (the adapter's standard ones and the criteria's `[fields]`)
/// and writes (its result properties, created on the first run when missing).
pub(super) async fn properties_check(
    crm: &AnyCrm,
    criteria: Option<&Criteria>,
    can_create: bool,
    checks: &mut Vec<Check>,
) {
    if let AnyCrm::HubSpot(_) = crm {
        let contacts = match crm.describe_properties(CrmObject::Contact).await {
            Ok(p) => p,
            Err(e) => {
                checks.push(Check::new(
                    "crm properties read",
                    Status::Fail,
                    format!("cannot list the contact properties: {e}"),
                    "grant the token crm.schemas.contacts.read",
                ));
                return;
            }
        };
        let names: BTreeSet<&str> = contacts
            .iter()
            .map(|p: &CrmProperty| p.name.as_str())
            .collect();
        let missing: Vec<&str> = leadsync_hubspot::mapping::CONTACT_PROPERTIES
            .iter()
            .copied()
            .filter(|p| !names.contains(p))
            .filter(|p| {
                criteria.is_none_or(|c| !c.crm_property_specs().iter().any(|s| s.name == *p))
            })
            .collect();
        if missing.is_empty() {
            checks.push(Check::ok(
                "crm properties read",
                format!(
                    "the {} contact properties leadsync reads exist",
                    leadsync_hubspot::mapping::CONTACT_PROPERTIES.len()
                ),
            ));
        } else {
            checks.push(Check::new(
                "crm properties read",
                Status::Warn,
                format!(
                    "not defined on contacts: {} (read as never set)",
                    missing.join(", ")
                ),
                "these are HubSpot standard properties: check the portal's contact properties (Settings › Properties)",
            ));
        }
    }
    let Some(criteria) = criteria else {
        return;
    };
    let specs = criteria.crm_property_specs();
    match crm.missing_properties(&specs).await {
        Err(e) => checks.push(Check::new(
            "crm properties written",
            Status::Fail,
            format!("cannot list the properties leadsync writes: {e}"),
            "grant the token the scope to read contact properties (crm.schemas.contacts.read on HubSpot)",
        )),
        Ok(absent) if absent.is_empty() => checks.push(Check::ok(
            "crm properties written",
            format!("leadsync's {} properties exist", specs.len()),
        )),
        Ok(absent) if can_create => checks.push(Check::ok(
            "crm properties written",
            format!(
                "{} to be created on the first run: {}",
                absent.len(),
                absent.join(", ")
            ),
        )),
        Ok(absent) => checks.push(Check::new(
            "crm properties written",
            Status::Fail,
            format!("missing and cannot be created with this token: {}", absent.join(", ")),
            "grant crm.schemas.contacts.write, or create them by hand in leadsync's property group",
        )),
    }
    if criteria.crm_reads().is_default() {
        checks.push(Check::ok(
            "criteria fields",
            "the criteria map no CRM properties of their own",
        ));
        return;
    }
    match leadsync_pipeline::sync::prepare_reads(crm, criteria).await {
        Ok(()) => checks.push(Check::ok(
            "criteria fields",
            format!(
                "the {} [fields] the criteria map exist with the types they read",
                criteria.fields.len()
            ),
        )),
        Err(e) => {
            let mut detail = e.to_string();
            if let leadsync_pipeline::sync::SyncError::Reads(source) = &e {
                let _ = write!(detail, ": {source}");
            }
            checks.push(Check::new(
                "criteria fields",
                Status::Fail,
                detail.replace('\n', "\n        "),
                "create the property in the CRM, or correct its name in the criteria's [fields]",
            ));
        }
    }
}

/// The account's limits, from the headers of the answers so far, against `CRM_RATE_TIER`.
pub(super) fn rate_check(usage: leadsync_hubspot::Usage, config: &Config, checks: &mut Vec<Check>) {
    let configured = u64::from(config.rate_per_10s);
    let daily = match (usage.daily_remaining, usage.daily) {
        (Some(left), Some(day)) if day < 1 << 40 => {
            format!("; {left} of {day} requests left today")
        }
        (Some(_), Some(_)) => "; no daily limit".to_owned(),
        _ => String::new(),
    };
    let Some(allowed) = usage
        .per_interval
        .filter(|_| usage.interval_ms == Some(10_000))
    else {
        checks.push(Check::new(
            "crm rate tier",
            Status::Warn,
            format!("HubSpot's answers carried no rate-limit headers{daily}"),
            "leave CRM_RATE_TIER=free unless the account is Professional or Enterprise",
        ));
        return;
    };
    let tier = usage.tier().unwrap_or("an unknown tier");
    if configured > allowed {
        checks.push(Check::new(
            "crm rate tier",
            Status::Fail,
            format!("CRM_RATE_TIER allows {configured} per 10 s; the account allows {allowed} ({tier}){daily}"),
            "set CRM_RATE_TIER=free: above the account's limit every run is throttled by 429s",
        ));
    } else if configured < allowed {
        checks.push(Check::new(
            "crm rate tier",
            Status::Warn,
            format!("the account allows {allowed} per 10 s ({tier}); CRM_RATE_TIER uses {configured}{daily}"),
            "set CRM_RATE_TIER=pro to use the account's whole limit",
        ));
    } else {
        checks.push(Check::ok(
            "crm rate tier",
            format!("{tier}, as CRM_RATE_TIER says{daily}"),
        ));
    }
}
