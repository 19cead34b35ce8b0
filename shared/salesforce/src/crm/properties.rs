//! The field bootstrap: which custom fields leadsync writes are missing, and creating them
//! through the Tooling API.

use super::*;

impl SalesforceCrm {
    pub(super) async fn missing_fields(
        &self,
        specs: &[PropertySpec],
    ) -> Result<Vec<String>, CrmError> {
        let mut missing = Vec::new();
        for object in ["Lead", "Contact"] {
            let existing = self.describe(object).await?;
            for spec in specs.iter().filter(|s| !s.read_only) {
                let field = mapping::field_for(&spec.name);
                if !existing.contains_key(&field) {
                    missing.push(format!("{object}.{field}"));
                }
            }
        }
        Ok(missing)
    }

    pub(super) async fn ensure_fields(&self, specs: &[PropertySpec]) -> Result<u32, CrmError> {
        // Known from an earlier call on this client (every slice of a warm function asks).
        let known = {
            let fields = self
                .result_fields
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            specs.iter().filter(|s| !s.read_only).all(|s| {
                ["Lead", "Contact"]
                    .iter()
                    .all(|o| fields.contains_key(&((*o).to_owned(), mapping::field_for(&s.name))))
            })
        };
        if known {
            return Ok(0);
        }
        let mut created = 0;
        for object in ["Lead", "Contact"] {
            let existing = self.describe(object).await?;
            // The inputs leadsync reads are the org's own fields (see `mapping`), never created.
            for spec in specs.iter().filter(|s| !s.read_only) {
                let field = mapping::field_for(&spec.name);
                let kind = match spec.kind {
                    PropertyKind::Number => "double",
                    PropertyKind::Text | PropertyKind::Enumeration => "string",
                    PropertyKind::LongText => "textarea",
                };
                let known = existing.get(&field).cloned();
                self.result_fields
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(
                        (object.to_owned(), field.clone()),
                        known.clone().unwrap_or_else(|| kind.to_owned()),
                    );
                if known.is_some() {
                    continue;
                }
                let metadata = match spec.kind {
                    PropertyKind::Number => {
                        json!({"type": "Number", "label": spec.label, "precision": 18, "scale": 2})
                    }
                    // Picklists need a value set and field-level security per value; results
                    // are written as text the criteria document defines.
                    PropertyKind::Text | PropertyKind::Enumeration => {
                        json!({"type": "Text", "label": spec.label, "length": 255})
                    }
                    PropertyKind::LongText => json!({
                        "type": "LongTextArea",
                        "label": spec.label,
                        "length": leadsync_domain::criteria::SUMMARY_LIMIT,
                        "visibleLines": 6
                    }),
                };
                let answer = self
                    .transport
                    .data_call(
                        Method::POST,
                        "/tooling/sobjects/CustomField",
                        Some(
                            &json!({"FullName": format!("{object}.{field}"), "Metadata": metadata}),
                        ),
                    )
                    .await;
                match answer {
                    Ok(_) => created += 1,
                    // Created concurrently (another slice): not an error.
                    Err(CrmError::Rejected { message, .. })
                        if message.starts_with("DUPLICATE_DEVELOPER_NAME") => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(created)
    }
}
