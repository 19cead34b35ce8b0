//! Evaluation: a lead's stage, scores and band as of `now`, with ([`Criteria::evaluate`]) or
//! without ([`Criteria::score`]) the reasons, when that verdict next changes, and how each
//! rule judges a lead.

use super::*;

impl Criteria {
    /// Stage, scores, band and which rules matched, as of `now` — without the explanation, and
    /// without allocating. What simulation and bulk scoring use; [`Criteria::evaluate`] gives
    /// the same numbers plus the reasons.
    pub fn score(&self, lead: &Lead, now: DateTime<Utc>) -> Score {
        self.judge_all(lead, now, |_, _| {})
    }

    /// Judge every rule for one lead, hand each verdict to `each`, and total them up. The one
    /// place the scoring arithmetic lives: `score` and `evaluate` differ only in `each`.
    pub(super) fn judge_all<'a>(
        &'a self,
        lead: &'a Lead,
        now: DateTime<Utc>,
        mut each: impl FnMut(&Rule, &Judged<'a>),
    ) -> Score {
        let domain = lead.email_domain_raw();
        let (mut fit, mut engagement, mut disqualified, mut matched) = (0i64, 0i64, false, 0u128);
        for (index, (group, rule)) in self.rules.iter().enumerate() {
            let judged = rule.judge(lead, domain, now, &self.fields);
            if judged.outcome == ReasonOutcome::Matched {
                matched |= 1 << index;
            }
            match (group, judged.outcome) {
                (Group::Disqualify, ReasonOutcome::Matched) => disqualified = true,
                (Group::Fit, _) => fit += judged.points,
                (Group::Engagement, _) => engagement += judged.points,
                (Group::Disqualify, _) => {}
            }
            each(rule, &judged);
        }
        self.finish(
            fit,
            engagement,
            disqualified,
            self.is_recycled(lead),
            matched,
        )
    }

    /// Sales sent the lead back (its status is one the agreement lists under recycled).
    pub(super) fn is_recycled(&self, lead: &Lead) -> bool {
        !self.recycled_statuses.is_empty()
            && lead
                .lead_status
                .as_deref()
                .is_some_and(|s| contains_folded(&self.recycled_statuses, s.trim()))
    }

    pub(super) fn finish(
        &self,
        fit: i64,
        engagement: i64,
        disqualified: bool,
        recycled: bool,
        matched: u128,
    ) -> Score {
        let fit = fit.clamp(0, self.caps.fit);
        let engagement = engagement.clamp(0, self.caps.engagement);
        let total = (fit + engagement).min(self.caps.total);
        let stage = if disqualified {
            Stage::Disqualified
        } else if recycled {
            Stage::Recycled
        } else if fit >= self.sql.min_fit
            && total >= self.sql.min_total
            && matched & self.sql_require == self.sql_require
        {
            Stage::Sql
        } else if fit >= self.mql.min_fit
            && total >= self.mql.min_total
            && matched & self.mql_require == self.mql_require
        {
            Stage::Mql
        } else {
            Stage::Iql
        };
        let band = self
            .bands
            .iter()
            .position(|(_, min)| total >= *min)
            .unwrap_or(self.bands.len().saturating_sub(1));
        Score {
            stage,
            fit,
            engagement,
            total,
            band: band as u8,
            matched,
        }
    }

    /// The name of a band index of a [`Score`].
    pub fn band_name(&self, band: u8) -> &str {
        self.bands
            .get(usize::from(band))
            .map_or("", |(name, _)| name.as_str())
    }

    /// The index of a band by name (for comparing with a [`Score`]).
    pub fn band_index(&self, name: &str) -> u8 {
        self.bands
            .iter()
            .position(|(n, _)| n == name)
            .map_or(0, |i| u8::try_from(i).unwrap_or(u8::MAX))
    }

    /// The codes of the rules a [`Score`] says matched, in document order.
    pub fn matched_codes(&self, score: &Score) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .enumerate()
            .filter(move |(i, _)| score.matched & (1 << i) != 0)
            .map(|(_, (_, r))| r.code.as_str())
    }

    /// When time alone next changes the lead's stage or band — engagement decaying, an
    /// activity window closing — if nothing else about it changes: the first whole hour (UTC)
    /// at which it has changed, within 400 days; `None` when it never does.
    ///
    /// A score only falls as time passes (decay and windows take points away, never add
    /// them), so the first changed hour is found by bisection: ~14 scorings per lead. The
    /// answer is the same whatever `now` is before the change, so storing it writes nothing new
    /// on the nights in between.
    pub fn next_change(&self, lead: &Lead, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let dated = |r: &Rule| {
            matches!(
                r.condition,
                Condition::Within(_) | Condition::OlderThan(_) | Condition::DueWithin(_)
            )
        };
        if !self
            .rules
            .iter()
            .any(|(_, r)| r.recency.is_some() || dated(r))
        {
            return None;
        }
        // Date conditions change their verdict at known instants; between them (and before
        // the first) only windows and decay change anything, and those only take points away.
        let first_flip = self
            .rules
            .iter()
            .filter(|(_, r)| dated(r))
            .filter_map(|(_, r)| {
                let date = observe(lead, r.field, None, &self.fields).date?;
                r.condition
                    .flips(date)
                    .into_iter()
                    .flatten()
                    .filter(|t| *t >= now)
                    .min()
            })
            .min();
        let at = |hour: i64| DateTime::from_timestamp(hour.checked_mul(3600)?, 0);
        let key = |when: DateTime<Utc>| {
            let s = self.score(lead, when);
            (s.stage, s.band)
        };
        let base = key(now);
        let mut lo = now.timestamp().div_euclid(3600) + 1;
        let horizon = lo + 24 * 400;
        // The first whole hour after the first flip: re-scored then, whatever it changes.
        let flip_hour = first_flip.map(|t| t.timestamp().div_euclid(3600) + 1);
        let mut hi = flip_hour.map_or(horizon, |h| h.clamp(lo, horizon));
        if key(at(hi)?) == base {
            return flip_hour.filter(|h| *h <= horizon).and_then(|_| at(hi));
        }
        if key(at(lo)?) != base {
            return at(lo);
        }
        // Invariant: the score at `lo` is the base one, at `hi` it has changed.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if key(at(mid)?) == base {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        at(hi)
    }

    /// Score one lead as of `now` (time windows and decay are measured to it), with one reason
    /// per rule. Pure and deterministic: the same lead, document and `now` always give the
    /// same scorecard.
    pub fn evaluate(&self, lead: &Lead, now: DateTime<Utc>) -> Scorecard {
        let mut reasons = Vec::with_capacity(self.rules.len());
        let score = self.judge_all(lead, now, |rule, judged| reasons.push(judged.reason(rule)));
        if let Some(why) = &lead.not_enriched {
            reasons.push(Reason {
                code: "NOT_ENRICHED".to_owned(),
                label: "Scored without provider firmographics".to_owned(),
                outcome: ReasonOutcome::Missing,
                value: Some(why.clone()),
                points: 0,
                source: None,
                disqualifier: false,
            });
        }
        for (reason, (group, _)) in reasons.iter_mut().zip(&self.rules) {
            reason.disqualifier = *group == Group::Disqualify;
        }
        Scorecard {
            stage: score.stage,
            fit: score.fit,
            engagement: score.engagement,
            total: score.total,
            band: self.band_name(score.band).to_owned(),
            criteria_version: self.version.clone(),
            reasons,
        }
    }
}

/// The numbers of an evaluation without its explanation (see [`Criteria::score`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    pub stage: Stage,
    pub fit: i64,
    pub engagement: i64,
    pub total: i64,
    /// Index into the document's bands (highest first); see [`Criteria::band_name`].
    pub band: u8,
    /// Bit `i` set when rule `i` (document order: disqualifiers, fit, engagement) matched.
    pub matched: u128,
}

/// The most rules a document may have (a [`Score`] keeps one bit per rule).
pub const MAX_RULES: usize = 128;

/// One rule's verdict on one lead, before it is written out as a [`Reason`].
pub(super) struct Judged<'a> {
    pub(super) outcome: ReasonOutcome,
    pub(super) points: i64,
    pub(super) seen: Seen<'a>,
    pub(super) field: Field,
    /// Days since the channel's last activity, for rules with a window or decay.
    pub(super) age_days: Option<f64>,
    /// The rule needs an activity date the lead does not have.
    pub(super) no_date: bool,
    pub(super) now: DateTime<Utc>,
}

impl Judged<'_> {
    pub(super) fn reason(&self, rule: &Rule) -> Reason {
        let seen = &self.seen;
        let base = if let Some(t) = seen.text {
            Some(if self.field == Field::EmailDomain {
                t.trim_end_matches('.').to_lowercase()
            } else {
                t.to_owned()
            })
        } else if let Some(n) = seen.number {
            Some(show_number(n))
        } else if let Some(list) = seen.list {
            Some(list.join(";"))
        } else if let Some(joined) = seen.joined {
            Some(joined.trim().to_owned())
        } else if let Some(date) = seen.date {
            // A date, not "N days ago": the text is written to the CRM and must stay true
            // (and unchanged, so the next run writes nothing) as the days pass.
            Some(date.format("%Y-%m-%d").to_string())
        } else if let Some(flag) = seen.flag {
            Some(flag.to_string())
        } else {
            seen.unreadable
                .map(|(raw, kind)| format!("{} (not a {})", raw.trim(), kind.as_str()))
        };
        let value = match (base, self.age_days, self.no_date) {
            (Some(v), _, true) => Some(format!("{v} (no activity date)")),
            (Some(v), Some(age), false) => {
                let last = self.now - chrono::Duration::milliseconds((age * 86_400_000.0) as i64);
                Some(format!("{v}, last {}", last.format("%Y-%m-%d")))
            }
            (v, _, _) => v,
        };
        Reason {
            code: rule.code.clone(),
            label: rule.label.clone(),
            outcome: self.outcome,
            value,
            points: self.points,
            source: self.seen.source.map(str::to_owned),
            disqualifier: false,
        }
    }
}

impl Rule {
    pub(super) fn judge<'a>(
        &self,
        lead: &'a Lead,
        email_domain: Option<&'a str>,
        now: DateTime<Utc>,
        mapped: &'a [MappedField],
    ) -> Judged<'a> {
        let seen = observe(lead, self.field, email_domain, mapped);
        let (outcome, points) = self.apply(&seen, now);
        let mut judged = Judged {
            outcome,
            points,
            seen,
            field: self.field,
            age_days: None,
            no_date: false,
            now,
        };
        if let (Some(recency), ReasonOutcome::Matched) = (self.recency, outcome) {
            match self.field.last_activity(lead).flatten() {
                None => {
                    judged.no_date = true;
                    (judged.outcome, judged.points) = (ReasonOutcome::Missing, 0);
                }
                Some(last) => {
                    // Activity dated after `now` counts as today.
                    let age = ((now - last).num_seconds().max(0) as f64) / 86_400.0;
                    judged.age_days = Some(age);
                    (judged.outcome, judged.points) = recency.adjust(age, points);
                }
            }
        }
        judged
    }

    pub(super) fn apply(&self, seen: &Seen<'_>, now: DateTime<Utc>) -> (ReasonOutcome, i64) {
        use ReasonOutcome::{Matched, Missing, NotMatched};
        let hit = |matched: bool| {
            if matched {
                (Matched, self.points)
            } else {
                (NotMatched, 0)
            }
        };
        let any_entry = |pred: &dyn Fn(&str) -> bool| -> Option<bool> {
            if let Some(v) = seen.text {
                Some(pred(v))
            } else if let Some(list) = seen.list {
                Some(list.iter().any(|v| pred(v.trim())))
            } else {
                seen.joined.map(|raw| {
                    raw.split(';')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .any(pred)
                })
            }
        };
        let dated = |test: &dyn Fn(i64) -> bool| match seen.date {
            None => (Missing, 0),
            // Seconds from the date to now: positive in the past.
            Some(date) => hit(test((now - date).num_seconds())),
        };
        const DAY: i64 = 86_400;
        match &self.condition {
            Condition::Missing => hit(!seen.present()),
            Condition::AnyOf(set) => {
                any_entry(&|v| contains_folded(set, v)).map_or((Missing, 0), hit)
            }
            Condition::NoneOf(set) => {
                any_entry(&|v| contains_folded(set, v)).map_or((Missing, 0), |any| hit(!any))
            }
            Condition::Contains(needles) => any_entry(&|v| {
                let v = v.to_lowercase();
                needles.iter().any(|n| v.contains(n.as_str()))
            })
            .map_or((Missing, 0), hit),
            Condition::Range { min, max } => match seen.number {
                None => (Missing, 0),
                Some(n) => hit(min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)),
            },
            Condition::PointsEach { each, cap } => match seen.number {
                None => (Missing, 0),
                Some(n) if n < 1.0 => (NotMatched, 0),
                Some(n) => {
                    let raw = (n.floor() as i64).saturating_mul(*each);
                    (Matched, cap.map_or(raw, |c| raw.min(c)))
                }
            },
            Condition::Is(want) => match seen.flag {
                None => (Missing, 0),
                Some(b) => hit(b == *want),
            },
            Condition::Within(days) => dated(&|age| age >= 0 && age <= i64::from(*days) * DAY),
            Condition::OlderThan(days) => dated(&|age| age > i64::from(*days) * DAY),
            Condition::DueWithin(days) => dated(&|age| age <= 0 && -age <= i64::from(*days) * DAY),
        }
    }
}

impl Recency {
    /// The window and the decay applied to a matched rule's points.
    pub(super) fn adjust(self, age_days: f64, points: i64) -> (ReasonOutcome, i64) {
        if self.within_days.is_some_and(|w| age_days > f64::from(w)) {
            return (ReasonOutcome::NotMatched, 0);
        }
        let points = match self.half_life_days {
            Some(half_life) => (points as f64 * 0.5f64.powf(age_days / half_life)).round() as i64,
            None => points,
        };
        (ReasonOutcome::Matched, points)
    }
}
