//! The running org sandbox: start it (in-process or as its own process), its address and
//! credentials, and what tests read and change directly (records, fields, faults, counters).

use super::*;

/// A running sandbox org.
pub struct SalesforceSandbox {
    pub(super) addr: SocketAddr,
    pub(super) state: Arc<AppState>,
    pub(super) stop: Option<oneshot::Sender<()>>,
    pub(super) task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SalesforceSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceSandbox")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for SalesforceSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl SalesforceSandbox {
    /// Build the org for the seed and serve it on 127.0.0.1.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub async fn start(config: SalesforceConfig) -> std::io::Result<Self> {
        let spec = DataSpec::anchored(config.seed, config.people, config.anchor);
        let records = world::build(spec, config.contact_share);
        let schema = world::OBJECTS
            .iter()
            .map(|(o, _)| {
                let fields = world::fields(o)
                    .into_iter()
                    .map(|d| Field {
                        name: d.name.to_owned(),
                        kind: d.kind.to_owned(),
                        updateable: d.updateable,
                        custom: d.name.ends_with("__c"),
                    })
                    .collect();
                (*o, fields)
            })
            .collect();
        let state = Arc::new(AppState {
            org: RwLock::new(Org {
                records,
                schema,
                hidden: BTreeSet::new(),
            }),
            tokens: Mutex::default(),
            cursors: Mutex::default(),
            jobs: Mutex::default(),
            in_flight: Mutex::default(),
            counters: Mutex::default(),
            used: AtomicU64::new(0),
            next_id: AtomicU64::new(10_000_000),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed ^ 0x5f5f)),
            faults: Mutex::new((config.faults, config.lock_row_rate)),
            clock: Mutex::new(config.anchor),
            config,
        });
        let listener = TcpListener::bind(("127.0.0.1", state.config.port)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = served.await {
                tracing::error!(%error, "Salesforce sandbox stopped with an error.");
            }
        });
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`: the login URL and the instance URL alike.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn client_id(&self) -> &str {
        &self.state.config.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.state.config.client_secret
    }

    /// A valid session without the token flow (what simple-salesforce is given).
    pub fn session(&self) -> String {
        issue_token(&self.state)
    }

    /// Every session ends: the next request with one gets `INVALID_SESSION_ID`.
    pub fn expire_sessions(&self) {
        lock(&self.state.tokens).clear();
    }

    pub fn counters(&self) -> Counters {
        lock(&self.state.counters).clone()
    }

    /// Requests counted against the daily allocation so far.
    pub fn api_usage(&self) -> u64 {
        self.state.used.load(AtomicOrdering::Relaxed)
    }

    pub fn set_faults(&self, faults: Faults, lock_row_rate: f64) {
        *lock(&self.state.faults) = (faults, lock_row_rate);
    }

    /// A record by Id (deleted ones too).
    pub fn record(&self, id: &str) -> Option<SObject> {
        self.state.org().records.get(id).cloned()
    }

    /// Every record of an object (deleted ones too).
    pub fn records(&self, kind: &str) -> Vec<SObject> {
        self.state
            .org()
            .records
            .values()
            .filter(|r| r.kind == kind)
            .cloned()
            .collect()
    }

    /// The Ids of the people the org holds now: contacts and unconverted leads, not deleted.
    pub fn people(&self) -> std::collections::BTreeSet<String> {
        self.state
            .org()
            .records
            .values()
            .filter(|r| {
                (r.kind == "Contact" || r.kind == "Lead")
                    && !r.flag("IsDeleted")
                    && !r.flag("IsConverted")
            })
            .map(|r| r.id().to_owned())
            .collect()
    }

    /// Hide a field from the integration user (its profile lacks field-level security).
    pub fn hide_field(&self, kind: &str, field: &str) {
        self.state
            .org_mut()
            .hidden
            .insert((kind.to_owned(), field.to_owned()));
    }

    /// Change fields of a record as a user in the UI would: `SystemModstamp` moves.
    pub fn edit(&self, id: &str, fields: &[(&str, Value)]) -> bool {
        let now = self.state.now();
        let mut org = self.state.org_mut();
        let Some(r) = org.records.get_mut(id) else {
            return false;
        };
        for (k, v) in fields {
            r.fields.insert((*k).to_owned(), v.clone());
        }
        touch(r, now);
        true
    }

    /// Delete a record (to the recycle bin: `queryAll` still sees it, `IsDeleted = true`).
    pub fn delete(&self, id: &str) -> bool {
        let now = self.state.now();
        let mut org = self.state.org_mut();
        let Some(r) = org.records.get_mut(id) else {
            return false;
        };
        r.fields.insert("IsDeleted".into(), json!(true));
        touch(r, now);
        true
    }

    /// Merge `loser` into `master` as Salesforce does: the loser is deleted with
    /// `MasterRecordId` set.
    pub fn merge(&self, master: &str, loser: &str) -> bool {
        let now = self.state.now();
        let mut org = self.state.org_mut();
        if !org.records.contains_key(master) {
            return false;
        }
        let Some(r) = org.records.get_mut(loser) else {
            return false;
        };
        r.fields.insert("IsDeleted".into(), json!(true));
        r.fields.insert("MasterRecordId".into(), json!(master));
        touch(r, now);
        if let Some(m) = org.records.get_mut(master) {
            touch(m, now);
        }
        true
    }

    /// Create a record (a new lead signing up): returns its Id.
    pub fn create(&self, kind: &'static str, fields: &[(&str, Value)]) -> String {
        let now = self.state.now();
        let n = self.state.next_id.fetch_add(1, AtomicOrdering::Relaxed);
        let id = ids::id(world::prefix(kind), n);
        let mut o = SObject {
            kind,
            fields: BTreeMap::new(),
        };
        for f in self.state.org().schema.get(kind).into_iter().flatten() {
            let v = if f.kind == "boolean" {
                json!(false)
            } else {
                Value::Null
            };
            o.fields.insert(f.name.clone(), v);
        }
        o.fields.insert("Id".into(), json!(id));
        for (k, v) in fields {
            o.fields.insert((*k).to_owned(), v.clone());
        }
        o.fields.insert("CreatedDate".into(), json!(sf_time(now)));
        touch(&mut o, now);
        self.state.org_mut().records.insert(id.clone(), o);
        id
    }

    /// Convert a lead: a contact (under a new account when `account` is `None`) takes over
    /// the person; the lead is marked converted. Returns the contact's Id.
    pub fn convert(&self, lead: &str, account: Option<&str>) -> Option<String> {
        let source = self.record(lead)?;
        if source.kind != "Lead" || source.flag("IsConverted") {
            return None;
        }
        let shared: Vec<(String, Value)> = source
            .fields
            .iter()
            .filter(|(k, _)| {
                world::fields("Contact")
                    .iter()
                    .any(|f| f.name == k.as_str())
                    && !matches!(
                        k.as_str(),
                        "Id" | "CreatedDate" | "LastModifiedDate" | "SystemModstamp" | "IsDeleted"
                    )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let account = match account {
            Some(a) => a.to_owned(),
            None => self.create("Account", &[("Name", source.fields["Company"].clone())]),
        };
        let mut fields: Vec<(&str, Value)> = shared
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        fields.push(("AccountId", json!(account)));
        fields.push(("Lead_Status__c", source.fields["Status"].clone()));
        let contact = self.create("Contact", &fields);
        let today = self.state.now().date_naive().to_string();
        self.edit(
            lead,
            &[
                ("IsConverted", json!(true)),
                ("ConvertedContactId", json!(contact)),
                ("ConvertedAccountId", json!(account)),
                ("ConvertedDate", json!(today)),
                ("Status", json!("Closed - Converted")),
            ],
        );
        Some(contact)
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
