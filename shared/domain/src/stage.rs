//! The funnel stages a lead can be in under a criteria version.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a lead stands in the funnel both teams agreed on.
///
/// `Iql` (information-qualified: we know who it is and nothing disqualifies it) →
/// `Mql` (marketing-qualified: fit and engagement pass the agreed bar) →
/// `Sql` (sales-qualified: the stronger bar sales signed for). `Disqualified` is outside the
/// ladder: a disqualifier rule matched. `Recycled`: sales handed the lead back to marketing for
/// nurturing (its sales status is one the agreement lists), whatever its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Disqualified,
    Recycled,
    Iql,
    Mql,
    Sql,
}

impl Stage {
    /// Every stage, in funnel order (disqualified first).
    pub const ALL: [Stage; 5] = [
        Stage::Disqualified,
        Stage::Recycled,
        Stage::Iql,
        Stage::Mql,
        Stage::Sql,
    ];

    /// The stable lowercase name used in keys, CRM properties and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Disqualified => "disqualified",
            Stage::Recycled => "recycled",
            Stage::Iql => "iql",
            Stage::Mql => "mql",
            Stage::Sql => "sql",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of `disqualified`, `iql`, `mql`, `sql`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stage {0:?}: expected disqualified, recycled, iql, mql or sql")]
pub struct UnknownStage(pub String);

impl FromStr for Stage {
    type Err = UnknownStage;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| UnknownStage(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for stage in Stage::ALL {
            assert_eq!(stage.as_str().parse::<Stage>(), Ok(stage));
        }
        assert!("MQL".parse::<Stage>().is_err());
    }
}
