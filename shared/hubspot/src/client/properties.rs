//! The property bootstrap: describing an object's properties (cached), and creating the group
//! and properties leadsync writes when they are missing.

use super::*;

/// An object type's property definitions and when they were listed.
pub(super) type Listed = (std::time::Instant, Vec<CrmProperty>);

/// A HubSpot property definition's type as a criteria document reads it.
pub(super) fn field_type(kind: &str, field_type: &str) -> Option<FieldType> {
    match (kind, field_type) {
        (_, "booleancheckbox") | ("bool", _) => Some(FieldType::Boolean),
        ("enumeration", "checkbox") => Some(FieldType::MultiSelect),
        ("enumeration", _) => Some(FieldType::Enumeration),
        ("string", _) => Some(FieldType::Text),
        ("number", _) => Some(FieldType::Number),
        ("date" | "datetime", _) => Some(FieldType::Date),
        _ => None,
    }
}

/// leadsync's own property group on contacts.
pub const PROPERTY_GROUP: &str = "leadsync";

#[derive(Debug, Deserialize)]
pub(super) struct Listing {
    #[serde(default)]
    pub(super) results: Vec<Value>,
}

pub(super) fn property_body(spec: &PropertySpec) -> Value {
    let (kind, field_type) = match spec.kind {
        PropertyKind::Text => ("string", "text"),
        PropertyKind::LongText => ("string", "textarea"),
        PropertyKind::Number => ("number", "number"),
        PropertyKind::Enumeration => ("enumeration", "select"),
    };
    let options: Vec<Value> = spec
        .options
        .iter()
        .enumerate()
        .map(|(i, o)| json!({"label": o, "value": o, "displayOrder": i, "hidden": false}))
        .collect();
    json!({
        "name": spec.name,
        "label": spec.label,
        "type": kind,
        "fieldType": field_type,
        "groupName": PROPERTY_GROUP,
        "description": "Written by leadsync from the shared lead criteria.",
        "options": options,
    })
}

impl HubSpotCrm {
    /// POST a creation; `Ok(false)` when it already exists (409), which is fine.
    pub(super) async fn create_once(&self, path: &str, body: &Value) -> Result<bool, CrmError> {
        let answer = self.post(path, body).await?;
        match answer.status {
            s if s.is_success() => Ok(true),
            StatusCode::CONFLICT => Ok(false),
            s => Err(CrmError::Rejected {
                status: s.as_u16(),
                message: error_message(&answer.body),
            }),
        }
    }

    pub(super) async fn describe_object(
        &self,
        object: CrmObject,
    ) -> Result<Vec<CrmProperty>, CrmError> {
        let path = match object {
            CrmObject::Contact => "contacts",
            CrmObject::Company => "companies",
            CrmObject::Deal => "deals",
        };
        if let Some((at, listed)) = self
            .described
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
            && at.elapsed() < COMPANY_CACHE_MAX_AGE
        {
            return Ok(listed.clone());
        }
        let (_, listed): (_, Listing) = self
            .get_parsed(&format!("/crm/v3/properties/{path}"))
            .await?;
        let text = |p: &Value, key: &str| {
            p.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let properties: Vec<CrmProperty> = listed
            .results
            .iter()
            .map(|p| {
                let (kind, field) = (text(p, "type"), text(p, "fieldType"));
                CrmProperty {
                    name: text(p, "name"),
                    kind: field_type(&kind, &field),
                    crm_type: format!("{kind}/{field}"),
                }
            })
            .filter(|p| !p.name.is_empty())
            .collect();
        self.described
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path, (std::time::Instant::now(), properties.clone()));
        Ok(properties)
    }

    pub(super) async fn ensure_leadsync_properties(
        &self,
        specs: &[PropertySpec],
    ) -> Result<u32, CrmError> {
        let missing_locally: Vec<&PropertySpec> = {
            let ensured = self
                .ensured
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            specs
                .iter()
                .filter(|s| !ensured.contains(&s.name))
                .collect()
        };
        if missing_locally.is_empty() {
            return Ok(0);
        }
        let (_, listed): (_, Listing) = self.get_parsed("/crm/v3/properties/contacts").await?;
        let existing: HashSet<String> = listed
            .results
            .iter()
            .filter_map(|p| p.get("name")?.as_str().map(str::to_owned))
            .collect();
        // Existing enumerations must offer every value leadsync writes (a new stage, a renamed
        // band): add the missing options, keeping the account's own.
        for spec in missing_locally
            .iter()
            // An input the account already has is the account's: its options stay as they are.
            .filter(|s| {
                s.kind == PropertyKind::Enumeration && !s.read_only && existing.contains(&s.name)
            })
        {
            let Some(current) = listed
                .results
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(spec.name.as_str()))
            else {
                continue;
            };
            let mut options: Vec<Value> = current
                .get("options")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let have: HashSet<String> = options
                .iter()
                .filter_map(|o| o.get("value")?.as_str().map(str::to_owned))
                .collect();
            let missing: Vec<&String> =
                spec.options.iter().filter(|o| !have.contains(*o)).collect();
            if missing.is_empty() {
                continue;
            }
            for value in missing {
                options.push(json!({"label": value, "value": value, "displayOrder": options.len(), "hidden": false}));
            }
            let path = format!("/crm/v3/properties/contacts/{}", spec.name);
            let answer = self
                .send_with(
                    reqwest::Method::PATCH,
                    &path,
                    Some(&json!({ "options": options })),
                    Ok,
                )
                .await?;
            if !answer.status.is_success() {
                return Err(CrmError::Rejected {
                    status: answer.status.as_u16(),
                    message: error_message(&answer.body),
                });
            }
        }
        let to_create: Vec<&PropertySpec> = missing_locally
            .into_iter()
            .filter(|s| !existing.contains(&s.name))
            .collect();
        let mut created = 0;
        if !to_create.is_empty() {
            let (_, groups): (_, Listing) = self
                .get_parsed("/crm/v3/properties/contacts/groups")
                .await?;
            if !groups
                .results
                .iter()
                .any(|g| g.get("name").and_then(Value::as_str) == Some(PROPERTY_GROUP))
            {
                let group =
                    json!({"name": PROPERTY_GROUP, "label": "leadsync", "displayOrder": -1});
                self.create_once("/crm/v3/properties/contacts/groups", &group)
                    .await?;
            }
            for spec in &to_create {
                if self
                    .create_once("/crm/v3/properties/contacts", &property_body(spec))
                    .await?
                {
                    created += 1;
                }
            }
        }
        let mut ensured = self
            .ensured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ensured.extend(specs.iter().map(|s| s.name.clone()));
        Ok(created)
    }
}
