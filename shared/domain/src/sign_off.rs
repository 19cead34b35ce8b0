//! Who signed a criteria document for one team, and when — carried by the criteria and by the
//! incentive plan they agree on (its own module so that neither imports the other for it).

use serde::{Deserialize, Serialize};

/// Who signed the document for one team, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignOff {
    pub name: String,
    pub date: String,
}
