//! The CRM a deployment serves, chosen by configuration (`CRM_KIND`): one type over both
//! adapters, so the functions and the pipeline never name either.

use chrono::{DateTime, Utc};
use leadsync_domain::LeadId;
use leadsync_domain::criteria::{CrmObject, CrmProperty, CrmReads};
use leadsync_domain::ports::{Crm, CrmError, PropertySpec, PropertyUpdate, PullPage, PushOutcome};
use leadsync_domain::runs::{Census, PullScope, ScopeKey};
use leadsync_hubspot::HubSpotCrm;
use leadsync_salesforce::SalesforceCrm;

/// HubSpot or Salesforce, as configured.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per cold start, never moved in a loop: boxing HubSpot's would only add a hop"
)]
pub enum AnyCrm {
    HubSpot(HubSpotCrm),
    Salesforce(Box<SalesforceCrm>),
}

macro_rules! each {
    ($self:ident, $crm:ident => $call:expr) => {
        match $self {
            AnyCrm::HubSpot($crm) => $call,
            AnyCrm::Salesforce($crm) => $call,
        }
    };
}

impl Crm for AnyCrm {
    fn max_ids(&self) -> usize {
        each!(self, c => c.max_ids())
    }

    fn name(&self) -> &'static str {
        each!(self, c => c.name())
    }

    async fn describe_properties(&self, object: CrmObject) -> Result<Vec<CrmProperty>, CrmError> {
        each!(self, c => c.describe_properties(object).await)
    }

    fn forget_properties(&self) {
        each!(self, c => c.forget_properties());
    }

    fn forward_properties(&self) -> Option<leadsync_domain::criteria::ForwardProperties> {
        each!(self, c => c.forward_properties())
    }

    fn set_reads(&self, reads: &CrmReads) -> Result<(), CrmError> {
        each!(self, c => c.set_reads(reads))
    }

    fn split_keys(&self, after: Option<&ScopeKey>, through: &ScopeKey) -> Option<ScopeKey> {
        each!(self, c => c.split_keys(after, through))
    }

    async fn pull_page(
        &self,
        scope: &PullScope,
        cursor: Option<&str>,
    ) -> Result<PullPage, CrmError> {
        each!(self, c => c.pull_page(scope, cursor).await)
    }

    async fn count(&self, scope: &PullScope) -> Result<Census, CrmError> {
        each!(self, c => c.count(scope).await)
    }

    async fn contacts_touched_since(&self, since: DateTime<Utc>) -> Result<Vec<LeadId>, CrmError> {
        each!(self, c => c.contacts_touched_since(since).await)
    }

    async fn deleted_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, DateTime<Utc>)>, CrmError> {
        each!(self, c => c.deleted_since(since).await)
    }

    async fn push(&self, updates: &[PropertyUpdate]) -> Result<PushOutcome, CrmError> {
        each!(self, c => c.push(updates).await)
    }

    async fn ensure_properties(&self, specs: &[PropertySpec]) -> Result<u32, CrmError> {
        each!(self, c => c.ensure_properties(specs).await)
    }

    async fn missing_properties(&self, specs: &[PropertySpec]) -> Result<Vec<String>, CrmError> {
        each!(self, c => c.missing_properties(specs).await)
    }
}
