//! Energy, estimated from measurements: what the jobs serving a model ran for (their runs'
//! charged CPU- and GPU-milliseconds, and their running run so far) at a power per GPU and per
//! CPU core, spread over the tokens the model served, so that each request gets its share by its
//! tokens. A model served by an upstream outside the platform has no job to measure: no
//! estimate (null), rather than a guess.

use std::collections::HashMap;

use grappe_db::{GatewayUsageRow, now_ms};

use crate::kit::error::AppResult;
use crate::kit::state::AppState;

/// The power drawn per GPU while a job holds it: an H100 or H200 SXM board at its full 700 W,
/// the high side, as a job holds its GPUs whether it computes or waits.
pub const GPU_WATTS: f64 = 700.0;
/// Per CPU core held, likewise on the high side (a 2 x 32-core node's 2 x 280 W and its memory).
pub const CPU_CORE_WATTS: f64 = 10.0;

/// Watt-hours per token of each model of some usage records (none where not measured).
pub struct Energy(HashMap<String, Option<f64>>);

impl Energy {
    /// The estimates for the models of `rows`, one query per model.
    pub async fn of(state: &AppState, rows: &[GatewayUsageRow]) -> AppResult<Energy> {
        let now = now_ms();
        let mut per_token = HashMap::new();
        for row in rows {
            if per_token.contains_key(&row.model) {
                continue;
            }
            let measure = state.db.serving_measure(&row.model, now).await?;
            let watt_hours = (measure.gpu_ms as f64 * GPU_WATTS + measure.cpu_ms as f64 * CPU_CORE_WATTS) / 3_600_000.0;
            let estimate = (measure.tokens > 0 && watt_hours > 0.0).then(|| watt_hours / measure.tokens as f64);
            per_token.insert(row.model.clone(), estimate);
        }
        Ok(Energy(per_token))
    }

    /// A request's share, in watt-hours.
    pub fn of_request(&self, row: &GatewayUsageRow) -> Option<f64> {
        let tokens = (row.prompt_tokens + row.completion_tokens) as f64;
        self.0.get(&row.model).copied().flatten().map(|per_token| per_token * tokens)
    }
}
