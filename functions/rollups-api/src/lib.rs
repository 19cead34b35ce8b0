//! rollups-api: finance's read path over the rollups, as a Lambda function URL (payload 2.0,
//! `AuthType: AWS_IAM`). The routes, the access split and the handler are
//! [`leadsync_app::rollups_api`]; this crate is the Lambda binary around them.

pub use leadsync_app::rollups_api::{Access, Api, Clock, MissingConfig, handle, router};
