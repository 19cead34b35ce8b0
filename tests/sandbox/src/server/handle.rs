//! The running sandbox: start it (in-process or as its own process), its address and token,
//! and what tests read and change directly (contacts, deals, faults, counters).

use super::*;

/// A running sandbox. Dropping it without [`Sandbox::shutdown`] stops the server too.
#[derive(Debug)]
pub struct Sandbox {
    pub(super) addr: SocketAddr,
    pub(super) state: Arc<AppState>,
    pub(super) token: String,
    pub(super) stop: Option<oneshot::Sender<()>>,
    pub(super) task: Option<JoinHandle<()>>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Sandbox {
    /// Generate the data and serve it on 127.0.0.1.
    ///
    /// # Errors
    /// [`SandboxError::Bind`] when the port is taken.
    pub async fn start(config: SandboxConfig) -> Result<Self, SandboxError> {
        let spec = DataSpec::anchored(config.seed, config.contacts, config.anchor);
        let (companies, mut contacts) = generate(spec);
        let mut contact_schema = Schema::standard("contactinformation", CONTACT_STANDARD);
        if !config.inputs_defined {
            for name in INPUT_PROPERTIES {
                contact_schema.properties.remove(*name);
                for c in &mut contacts {
                    c.properties.remove(*name);
                }
            }
        }
        let (deals, contact_deals) = generate_deals(spec, &contacts, &companies);
        let db = Db {
            contacts: contacts.into_iter().map(|r| (r.id, r)).collect(),
            companies: companies.into_iter().map(|r| (r.id, r)).collect(),
            deals: deals.into_iter().map(|r| (r.id, r)).collect(),
            contact_deals,
            schemas: BTreeMap::from([
                (ObjectType::Contacts, contact_schema),
                (
                    ObjectType::Companies,
                    Schema::standard("companyinformation", COMPANY_STANDARD),
                ),
                (
                    ObjectType::Deals,
                    Schema::standard("dealinformation", DEAL_STANDARD),
                ),
            ]),
        };
        let state = Arc::new(AppState {
            token: config.token.clone(),
            scopes: config
                .scopes
                .clone()
                .unwrap_or_else(|| ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect()),
            limiter: Mutex::new(Limiter::new(config.limits, config.faults, config.seed)),
            db: RwLock::new(db),
            generation: std::sync::atomic::AtomicU64::new(0),
            matches_cache: Mutex::default(),
            requests: Mutex::default(),
            credits: std::sync::atomic::AtomicU64::new(0),
            plan: Mutex::default(),
        });
        let listener = TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(SandboxError::Bind)?;
        let addr = listener.local_addr().map_err(SandboxError::Bind)?;
        // One write per response and no Nagle delay: a split write costs ~40 ms on loopback.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = served.await {
                tracing::error!(%error, "Sandbox server stopped with an error.");
            }
        });
        Ok(Self {
            addr,
            state,
            token: config.token,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the value for `CRM_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn contact(&self, id: u64) -> Option<Record> {
        self.state.db().contacts.get(&id).cloned()
    }

    pub fn contacts(&self) -> Vec<Record> {
        self.state.db().contacts.values().cloned().collect()
    }

    pub fn deals(&self) -> Vec<Record> {
        self.state.db().deals.values().cloned().collect()
    }

    /// Deal ids associated with a contact.
    pub fn contact_deals(&self, contact: u64) -> Vec<u64> {
        self.state
            .db()
            .contact_deals
            .get(&contact)
            .cloned()
            .unwrap_or_default()
    }

    pub fn companies(&self) -> Vec<Record> {
        self.state.db().companies.values().cloned().collect()
    }

    /// Requests served per endpoint (`POST /crm/v3/objects/contacts/search`, …).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Enrichment credits billed so far (one per 200 answer).
    pub fn credits(&self) -> u64 {
        self.state
            .credits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Limit the enrichment endpoint to `per_window` requests in any rolling `window` (a
    /// provider plan's limit) from now on.
    pub fn set_enrich_limit(&self, per_window: u32, window: std::time::Duration) {
        *self.plan() = crate::enrich::PlanLimit::new(per_window, window);
    }

    /// Enrichment requests that arrived over the plan's limit.
    pub fn enrich_violations(&self) -> u64 {
        self.plan().violations
    }

    pub(super) fn plan(&self) -> std::sync::MutexGuard<'_, crate::enrich::PlanLimit> {
        self.state
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the rate limiter and fault injection did so far.
    pub fn limit_stats(&self) -> LimitStats {
        self.state.limiter().stats
    }

    /// Replace the faults injected from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.state.limiter().faults = faults;
    }

    /// Replace the rate limits from now on.
    pub fn set_limits(&self, limits: Limits) {
        self.state.limiter().limits = limits;
    }

    /// Change a contact as a CRM user would: set properties and bump its modification time.
    pub fn edit_contact(&self, id: u64, properties: &[(&str, &str)]) -> bool {
        let mut db = self.state.db_mut();
        let Some(record) = db.contacts.get_mut(&id) else {
            return false;
        };
        for (k, v) in properties {
            record.properties.insert((*k).to_owned(), (*v).to_owned());
        }
        record.touch(Utc::now(), ObjectType::Contacts.modified_property());
        true
    }

    /// Create a contact as a CRM user would; returns its id (higher than every existing one).
    pub fn create_contact(&self, properties: &[(&str, &str)]) -> u64 {
        let mut db = self.state.db_mut();
        let id = db
            .contacts
            .keys()
            .next_back()
            .map_or(1_000_001, |last| last + 1);
        let now = Utc::now();
        let mut record = Record {
            id,
            properties: properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            created_at: now,
            updated_at: now,
            archived: false,
        };
        record
            .properties
            .insert("hs_object_id".into(), id.to_string());
        record.properties.insert("createdate".into(), iso(now));
        record.touch(now, ObjectType::Contacts.modified_property());
        db.contacts.insert(id, record);
        id
    }

    /// Merge contact `merged` into `primary` as HubSpot does: the primary keeps its id, lists
    /// the merged id (and the ids merged into that one) in `hs_merged_object_ids`, takes over
    /// its deals, and is modified; the merged contact is archived.
    pub fn merge_contacts(&self, primary: u64, merged: u64) -> bool {
        merge(&mut self.state.db_mut(), primary, merged, Utc::now())
    }

    /// Change a deal (e.g. close it won) as a rep does: its `hs_lastmodifieddate` moves, its
    /// contacts' records do not.
    pub fn edit_deal(&self, id: u64, properties: &[(&str, &str)]) -> bool {
        let mut db = self.state.db_mut();
        let Some(record) = db.deals.get_mut(&id) else {
            return false;
        };
        for (k, v) in properties {
            record.properties.insert((*k).to_owned(), (*v).to_owned());
        }
        record.touch(Utc::now(), ObjectType::Deals.modified_property());
        true
    }

    /// Define a property on `object` (`contacts`, `companies`, `deals`), as an admin creating
    /// it in HubSpot's settings would: `kind` is HubSpot's type (`string`, `number`, `date`,
    /// `datetime`, `enumeration`, `bool`), `field_type` its field type (`text`, `select`,
    /// `checkbox`, `booleancheckbox`, …). False for an unknown object.
    pub fn define_property(&self, object: &str, name: &str, kind: &str, field_type: &str) -> bool {
        let Some(t) = ObjectType::parse(object) else {
            return false;
        };
        let mut db = self.state.db_mut();
        let schema = db.schemas.entry(t).or_default();
        let group = schema.groups.keys().next().cloned().unwrap_or_default();
        schema.properties.insert(
            name.to_owned(),
            crate::properties::PropertyDef {
                name: name.to_owned(),
                label: name.to_owned(),
                kind: kind.to_owned(),
                field_type: field_type.to_owned(),
                group_name: group,
                description: String::new(),
                options: Vec::new(),
            },
        );
        true
    }

    /// The property definitions of `object`, by name.
    pub fn property_definitions(
        &self,
        object: &str,
    ) -> BTreeMap<String, crate::properties::PropertyDef> {
        ObjectType::parse(object)
            .and_then(|t| {
                self.state
                    .db()
                    .schemas
                    .get(&t)
                    .map(|s| s.properties.clone())
            })
            .unwrap_or_default()
    }

    /// Set properties on a company, as a user editing it in HubSpot would.
    pub fn edit_company(&self, id: u64, properties: &[(&str, &str)]) -> bool {
        let mut db = self.state.db_mut();
        let Some(record) = db.companies.get_mut(&id) else {
            return false;
        };
        for (k, v) in properties {
            record.properties.insert((*k).to_owned(), (*v).to_owned());
        }
        record.touch(Utc::now(), ObjectType::Companies.modified_property());
        true
    }

    /// Archive a contact, as deleting it in HubSpot does: it leaves search and batch reads.
    pub fn archive_contact(&self, id: u64) -> bool {
        let mut db = self.state.db_mut();
        let Some(record) = db.contacts.get_mut(&id) else {
            return false;
        };
        record.archived = true;
        record.touch(Utc::now(), ObjectType::Contacts.modified_property());
        true
    }

    /// Give every contact the same modification time (timestamps are not unique in HubSpot).
    pub fn stamp_all_contacts(&self, at: chrono::DateTime<Utc>) {
        let mut db = self.state.db_mut();
        for record in db.contacts.values_mut() {
            record.touch(at, ObjectType::Contacts.modified_property());
        }
    }

    /// Stop serving and wait for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
