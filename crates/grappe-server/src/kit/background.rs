//! Background loops. Each holds a lease row so that, with several server processes on one
//! database, exactly one process runs it at a time; another takes over when the holder dies and
//! its lease expires. The foundation has one loop, `ticker`, which counts its runs, sweeps
//! expired sessions and the gateway's expired reservations (and old rate windows), writes the audit chain's head down once a day (the anchor the public
//! programme data publishes); the scheduler and pollers of other modules follow the same
//! pattern.

use std::sync::atomic::Ordering;

use tokio::sync::watch;

use crate::kit::state::AppState;

pub const TICKER: &str = "ticker";

pub async fn ticker(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let ttl_ms = state.config.lease_ttl.as_millis() as i64;
    let mut interval = tokio::time::interval(state.config.lease_tick);
    let mut anchored_day = String::new();
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => break,
        }
        let held = match state.db.try_acquire_lease(TICKER, &state.instance, grappe_db::now_ms(), ttl_ms).await {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(error = %error, "lease renewal failed");
                false
            }
        };
        let was_held = state.ticker_here.swap(held, Ordering::Relaxed);
        if held != was_held {
            tracing::info!(lease = TICKER, instance = %state.instance, held, "lease changed hands");
        }
        if held && let Err(error) = run_once(&state, &mut anchored_day).await {
            tracing::warn!(error = %error, "ticker run failed");
        }
    }
    if state.ticker_here.swap(false, Ordering::Relaxed)
        && let Err(error) = state.db.release_lease(TICKER, &state.instance).await
    {
        tracing::warn!(error = %error, "releasing the lease failed");
    }
}

/// One run, fenced: if the lease was lost since it was renewed, nothing runs.
async fn run_once(state: &AppState, anchored_day: &mut String) -> Result<(), grappe_db::DbError> {
    if state.db.tick_lease(TICKER, &state.instance).await? {
        state.db.delete_expired_sessions().await?;
        state.db.release_expired_reservations(grappe_db::now_ms()).await?;
        if let Err(error) = crate::gateway::batches::advance(state).await {
            tracing::warn!(error = %error, "following the gateway's batches failed");
        }
        if let Err(error) = crate::gateway::fine_tuning::advance(state).await {
            tracing::warn!(error = %error, "following the fine-tuning jobs failed");
        }
        let today = crate::kit::page::iso_date(grappe_db::now_ms());
        if *anchored_day != today && state.db.anchor_audit(&today).await? {
            // Once a day, with the audit's anchor.
            match crate::compute::forget_unused_workdirs(state).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "working-directory archives that no job needs were deleted"),
                Err(error) => tracing::warn!(error = %error, "sweeping the working-directory archives failed"),
            }
            *anchored_day = today;
        }
    }
    Ok(())
}
