//! What a rule sees of a lead: a field's value, borrowed, in the slot of its type, with where
//! it came from.

use super::*;

/// A field's value for one lead, borrowed: in the slot of its type, and where it came from.
#[derive(Clone, Copy)]
pub(super) struct Seen<'a> {
    pub(super) text: Option<&'a str>,
    pub(super) number: Option<f64>,
    /// The entries of a list field.
    pub(super) list: Option<&'a [String]>,
    /// A multi-select property's value as the CRM gives it (`a;b;c`).
    pub(super) joined: Option<&'a str>,
    pub(super) date: Option<DateTime<Utc>>,
    pub(super) flag: Option<bool>,
    /// A mapped property's value that does not read as its declared type, and that type.
    pub(super) unreadable: Option<(&'a str, FieldType)>,
    pub(super) source: Option<&'a str>,
}

pub(super) const NOTHING: Seen<'static> = Seen {
    text: None,
    number: None,
    list: None,
    joined: None,
    date: None,
    flag: None,
    unreadable: None,
    source: None,
};

impl Seen<'_> {
    /// The lead has a value for the field (readable or not).
    pub(super) fn present(&self) -> bool {
        self.text.is_some()
            || self.number.is_some()
            || self.list.is_some()
            || self.joined.is_some()
            || self.date.is_some()
            || self.flag.is_some()
            || self.unreadable.is_some()
    }
}

/// A date property's value: RFC 3339, epoch milliseconds (HubSpot), or a plain date.
pub(crate) fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            text.parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
        })
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
        })
}

pub(super) fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// A number as a reason shows it: whole numbers without a decimal point.
pub(super) fn show_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// A mapped property's text value for one lead: its own or its company's property, or the
/// most recently created deal that has a value.
pub(super) fn mapped_value<'a>(lead: &'a Lead, field: &MappedField) -> Option<&'a str> {
    let present = |v: &'a String| Some(v.as_str()).filter(|v| !v.trim().is_empty());
    match field.object {
        CrmObject::Contact | CrmObject::Company => present(lead.properties.get(&field.key)?),
        CrmObject::Deal => lead
            .deals
            .iter()
            .filter_map(|d| {
                Some((
                    d.created_at,
                    &d.id,
                    present(d.properties.get(&field.property)?)?,
                ))
            })
            .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
            .map(|(_, _, v)| v),
    }
}

pub(super) fn observe<'a>(
    lead: &'a Lead,
    field: Field,
    email_domain: Option<&'a str>,
    mapped: &'a [MappedField],
) -> Seen<'a> {
    fn text(value: Option<&str>) -> Seen<'_> {
        Seen {
            text: value.map(str::trim).filter(|v| !v.is_empty()),
            ..NOTHING
        }
    }
    fn count(n: u32) -> Seen<'static> {
        Seen {
            number: Some(f64::from(n)),
            ..NOTHING
        }
    }
    fn date(at: Option<DateTime<Utc>>) -> Seen<'static> {
        Seen {
            date: at,
            ..NOTHING
        }
    }
    let firmo = &lead.firmographics;
    match field {
        Field::Industry => firmo.industry.as_ref().map_or(NOTHING, |s| Seen {
            source: Some(&s.source.provider),
            ..text(Some(&s.value))
        }),
        Field::Country => firmo.country.as_ref().map_or(NOTHING, |s| Seen {
            source: Some(&s.source.provider),
            ..text(Some(&s.value))
        }),
        Field::Employees => firmo.employees.as_ref().map_or(NOTHING, |s| Seen {
            number: Some(s.value as f64),
            source: Some(&s.source.provider),
            ..NOTHING
        }),
        Field::AnnualRevenue => firmo.annual_revenue.as_ref().map_or(NOTHING, |s| Seen {
            number: Some(s.value as f64),
            source: Some(&s.source.provider),
            ..NOTHING
        }),
        // The address itself is never copied into a reason: reasons are written to the CRM,
        // snapshots and logs. Only whether it is present.
        Field::Email => text(
            lead.email
                .as_deref()
                .filter(|e| !e.trim().is_empty())
                .map(|_| "present"),
        ),
        Field::EmailDomain => text(email_domain),
        Field::JobTitle => text(lead.job_title.as_deref()),
        Field::Source => text(lead.source.as_deref()),
        Field::PageViews => count(lead.engagement.page_views),
        Field::EmailOpens => count(lead.engagement.email_opens),
        Field::EmailClicks => count(lead.engagement.email_clicks),
        Field::FormSubmissions => count(lead.engagement.form_submissions),
        Field::CompanyType => firmo.company_type.as_ref().map_or(NOTHING, |s| Seen {
            source: Some(&s.source.provider),
            ..text(Some(&s.value))
        }),
        Field::Technologies => firmo
            .technologies
            .as_ref()
            .filter(|s| !s.value.is_empty())
            .map_or(NOTHING, |s| Seen {
                list: Some(&s.value),
                source: Some(&s.source.provider),
                ..NOTHING
            }),
        Field::Budget => text(lead.bant.budget.as_deref()),
        Field::Authority => text(lead.bant.authority.as_deref()),
        Field::Need => text(lead.bant.need.as_deref()),
        Field::Timeline => text(lead.bant.timeline.as_deref()),
        Field::LeadStatus => text(lead.lead_status.as_deref()),
        Field::RejectionReason => text(lead.rejection_reason.as_deref()),
        Field::LastPageView => date(lead.engagement.last_page_view_at),
        Field::LastEmailOpen => date(lead.engagement.last_email_open_at),
        Field::LastEmailClick => date(lead.engagement.last_email_click_at),
        Field::LastFormSubmission => date(lead.engagement.last_form_submission_at),
        Field::LastActivity => date(lead.engagement.last_activity_at()),
        Field::Mapped(i) => {
            let Some(def) = mapped.get(usize::from(i)) else {
                return NOTHING;
            };
            let Some(raw) = mapped_value(lead, def) else {
                return NOTHING;
            };
            let unreadable = Seen {
                unreadable: Some((raw, def.kind)),
                ..NOTHING
            };
            match def.kind {
                FieldType::Text | FieldType::Enumeration => text(Some(raw)),
                FieldType::MultiSelect => Seen {
                    joined: Some(raw),
                    ..NOTHING
                },
                FieldType::Number => raw
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .map_or(unreadable, |n| Seen {
                        number: Some(n),
                        ..NOTHING
                    }),
                FieldType::Date => parse_date(raw).map_or(unreadable, |d| date(Some(d))),
                FieldType::Boolean => parse_flag(raw).map_or(unreadable, |b| Seen {
                    flag: Some(b),
                    ..NOTHING
                }),
            }
        }
    }
}

/// Case-insensitive membership without allocating for short ASCII values.
pub(super) fn contains_folded(set: &HashSet<String>, value: &str) -> bool {
    let mut buffer = [0u8; 128];
    if value.is_ascii() && value.len() <= buffer.len() {
        let folded = &mut buffer[..value.len()];
        folded.copy_from_slice(value.as_bytes());
        folded.make_ascii_lowercase();
        // ASCII in, ASCII out: always UTF-8.
        std::str::from_utf8(folded).is_ok_and(|v| set.contains(v))
    } else {
        set.contains(&value.to_lowercase())
    }
}
