//! `leadsync erase --lead ID`: erase a person on request (table and bucket from the
//! environment or flags, the CRM's namespace from `CRM_KIND`, as the functions read them),
//! then say what was removed and what was kept, and why.

use anyhow::Context as _;
use leadsync_domain::LeadId;
use leadsync_pipeline::erase::{Erasure, erase};

pub async fn run(lead: &str, table: &str, bucket: &str, json: bool) -> anyhow::Result<()> {
    let id = LeadId::new(lead).with_context(|| format!("--lead {lead:?}"))?;
    let stores = crate::rollups_cmd::stores(table, bucket).await;
    let now = chrono::Utc::now();
    let erasure = erase(
        &stores.store,
        &stores.exports,
        &id,
        &leadsync_app::pseudonym(),
        now,
        chrono::Duration::minutes(15),
    )
    .await
    .with_context(|| format!("erasing lead {id}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&erasure)?);
    } else {
        print!("{}", describe(&id, &erasure));
    }
    Ok(())
}

/// What an erasure did, in sentences an operator can paste into the request's answer.
pub fn describe(id: &LeadId, e: &Erasure) -> String {
    let t = &e.table;
    let s = &e.snapshots;
    let mut out = format!("Lead {id} erased.\n");
    out += &format!(
        "  state (scores, stage, what was written to the CRM): {}\n",
        if t.state_deleted {
            "deleted"
        } else {
            "none held"
        }
    );
    out += &format!(
        "  snapshot and quarantine lines: {} removed from {} of {} objects, {} older object versions deleted\n",
        s.lines_removed, s.objects_rewritten, s.objects_read, s.versions_deleted
    );
    out += &format!(
        "  facts of open periods: {} kept under the pseudonym {} (counts and credits unchanged)\n",
        t.facts_anonymised, t.pseudonym
    );
    if t.facts_kept > 0 {
        out += &format!(
            "  facts of closed periods ({}): {} kept as paid incentive records (the CRM id only, no contact data)\n",
            t.closed_periods
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            t.facts_kept
        );
    }
    if t.links > 0 {
        out += &format!(
            "  merge and deletion records: {} moved to the pseudonym\n",
            t.links
        );
    }
    if !e.periods_recomputed.is_empty() {
        out += &format!(
            "  rollups recomputed: {}\n",
            e.periods_recomputed.join(", ")
        );
    }
    out += "  firmographic cache: nothing to erase (companies by web domain, never people)\n";
    out += "If the CRM still holds this person, delete them there too, or the next sync reads them back.\n";
    out
}
