//! The explanation of an evaluation: one [`Reason`] per rule, the [`Scorecard`] that holds
//! them, the summary a rep reads and the CRM properties it maps to.

use super::*;

/// How one rule came out for one lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonOutcome {
    Matched,
    NotMatched,
    Missing,
}

/// One rule's verdict on one lead: what was seen, where it came from, what it earned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub label: String,
    pub outcome: ReasonOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub points: i64,
    /// Provenance of a firmographic value (`crm`, a provider name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The rule is a disqualifier (matched: the lead is out, whatever it scores).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disqualifier: bool,
}

/// The result of evaluating one lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scorecard {
    pub stage: Stage,
    pub fit: i64,
    pub engagement: i64,
    pub total: i64,
    pub band: String,
    pub criteria_version: String,
    /// One entry per rule of the document, in document order (disqualifiers, fit, engagement).
    pub reasons: Vec<Reason>,
}

impl Scorecard {
    /// Codes of the rules that matched, in document order.
    pub fn matched_codes(&self) -> impl Iterator<Item = &str> {
        self.reasons
            .iter()
            .filter(|r| r.outcome == ReasonOutcome::Matched)
            .map(|r| r.code.as_str())
    }

    /// Why, in words a rep reads, one line each, most telling first: the disqualifiers that
    /// matched, the scoring rules that matched by the size of their points (with the value
    /// seen: `+20 Core industry … [INTERNET]`, `-10 …`), then the rules that could not be
    /// judged for want of data (`Unknown: …`: not enriched, BANT not recorded), at most
    /// [`SUMMARY_LIMIT`] characters (whole lines; the rest counted in a last line). A lead no
    /// rule said anything about gets one line saying so.
    pub fn summary(&self) -> String {
        let seen = |r: &Reason| {
            r.value
                .as_deref()
                .map(|v| format!(" [{v}]"))
                .unwrap_or_default()
        };
        let mut disqualified = Vec::new();
        let mut scored: Vec<&Reason> = Vec::new();
        let mut unknown = Vec::new();
        for r in &self.reasons {
            match r.outcome {
                ReasonOutcome::Matched if r.disqualifier => {
                    disqualified.push(format!("Disqualified: {}{}", r.label, seen(r)));
                }
                ReasonOutcome::Matched => scored.push(r),
                ReasonOutcome::Missing if !r.disqualifier => {
                    unknown.push(format!("Unknown: {} (no data)", r.label));
                }
                ReasonOutcome::Missing | ReasonOutcome::NotMatched => {}
            }
        }
        scored.sort_by_key(|r| std::cmp::Reverse(r.points.abs()));
        let lines: Vec<String> = disqualified
            .into_iter()
            .chain(
                scored
                    .iter()
                    .map(|r| format!("{:+} {}{}", r.points, r.label, seen(r))),
            )
            .chain(unknown)
            .collect();
        if lines.is_empty() {
            // Said in words too: an empty field reads as "never scored".
            return format!(
                "No rule of criteria {} matched: score {}",
                self.criteria_version, self.total
            );
        }
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let more = lines.len() - i;
            let tail = format!("… and {more} more");
            let needed = out.chars().count() + line.chars().count() + 1;
            if needed + tail.chars().count() + 1 > SUMMARY_LIMIT && more > 1
                || needed > SUMMARY_LIMIT
            {
                out.push_str(&tail);
                return out;
            }
            out.push_str(line);
            out.push('\n');
        }
        out.trim_end().to_owned()
    }

    /// The CRM properties this result maps to, under the document's mapping.
    pub fn crm_properties(&self, mapping: &CrmMapping) -> BTreeMap<String, String> {
        let reasons: Vec<&str> = self.matched_codes().collect();
        BTreeMap::from([
            (mapping.stage.clone(), self.stage.as_str().to_owned()),
            (mapping.score.clone(), self.total.to_string()),
            (mapping.fit_score.clone(), self.fit.to_string()),
            (
                mapping.engagement_score.clone(),
                self.engagement.to_string(),
            ),
            (mapping.summary.clone(), self.summary()),
            (mapping.band.clone(), self.band.clone()),
            (mapping.reasons.clone(), reasons.join(";")),
            (
                mapping.criteria_version.clone(),
                self.criteria_version.clone(),
            ),
        ])
    }
}
