//! leadsync-cli's integration tests, one binary: each module below was a test binary of its own.
//! One link of the AWS SDK and axum instead of one per file; the test names keep the
//! file as their module (`fan_out::…`), which is how `scripts/test` shards them.

mod criteria_command;
mod first_hour;
mod logs_are_clean;
mod sandbox_command;
mod simulate_snapshot;
