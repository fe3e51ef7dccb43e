//! Allocations as budgets per resource, and what a project's jobs take from them.
//!
//! An allocation grants GPU-hours and CPU-hours. Each is a budget of its own:
//! - GPU-hours and no CPU-hours (the usual GPU grant on Jean Zay): jobs must ask for GPUs; their
//!   GPU-hours are charged and limited, their CPU use is recorded but not limited;
//! - CPU-hours and no GPU-hours: CPU jobs only;
//! - both: both are limited, each against its own budget;
//! - neither: nothing runs.
//!
//! A budget of zero means "not limited" only for CPU-hours beside GPU-hours. Amounts are in
//! milliseconds of one CPU or one GPU, exact: a run of 260 ms on 1,000 CPUs is 260,000 CPU-ms.
//! What running and queued jobs take is counted by the database in one aggregate
//! (`grappe_db::Db::project_standing`).

/// GPU-hours and CPU-hours granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    pub gpu_hours: i64,
    pub cpu_hours: i64,
}

/// Resource time, in milliseconds of one GPU and of one CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Amount {
    pub gpu_ms: i64,
    pub cpu_ms: i64,
}

impl Amount {
    /// What `gpus` and `cpus` held for `ms` milliseconds take.
    pub fn of(gpus: i64, cpus: i64, ms: i64) -> Amount {
        let ms = ms.max(0);
        Amount { gpu_ms: gpus.saturating_mul(ms), cpu_ms: cpus.saturating_mul(ms) }
    }

    pub fn plus(self, other: Amount) -> Amount {
        Amount { gpu_ms: self.gpu_ms.saturating_add(other.gpu_ms), cpu_ms: self.cpu_ms.saturating_add(other.cpu_ms) }
    }

    pub fn gpu_hours(self) -> f64 {
        self.gpu_ms as f64 / 3_600_000.0
    }

    pub fn cpu_hours(self) -> f64 {
        self.cpu_ms as f64 / 3_600_000.0
    }
}

/// Why an allocation takes no job of this shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("the project has neither GPU-hours nor CPU-hours")]
    Empty,
    #[error("the project's allocation has no GPU-hours: ask for 0 GPUs")]
    NoGpuHours,
    #[error("the project's allocation is GPU-hours only: ask for at least one GPU")]
    GpuOnly,
}

impl Allocation {
    fn cpu_limited(self) -> bool {
        self.cpu_hours > 0 || self.gpu_hours == 0
    }

    /// Whether a job asking for `gpus` GPUs may run on this allocation at all.
    pub fn accepts(self, gpus: i64) -> Result<(), Mismatch> {
        match (self.gpu_hours > 0, self.cpu_hours > 0, gpus > 0) {
            (false, false, _) => Err(Mismatch::Empty),
            (false, true, true) => Err(Mismatch::NoGpuHours),
            (true, false, false) => Err(Mismatch::GpuOnly),
            _ => Ok(()),
        }
    }

    /// The share of the allocation that `amount` takes: the larger of its shares of the limited
    /// budgets (1.0 = all of it). Use of a resource with no budget counts as infinitely over.
    pub fn share(self, amount: Amount) -> f64 {
        let part = |used_ms: i64, hours: i64| match (used_ms, hours) {
            (used, _) if used <= 0 => 0.0,
            (_, 0) => f64::INFINITY,
            (used, hours) => used as f64 / (hours as f64 * 3_600_000.0),
        };
        let cpu = if self.cpu_limited() { part(amount.cpu_ms, self.cpu_hours) } else { 0.0 };
        part(amount.gpu_ms, self.gpu_hours).max(cpu)
    }
}

/// What a project's active jobs take besides what is charged: `running`, what its running jobs
/// have run so far (each up to its time limit); `reserved`, what its running and pending jobs
/// may still use up to their time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Commitments {
    pub running: Amount,
    pub reserved: Amount,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3_600_000;

    #[test]
    fn each_resource_is_a_budget_of_its_own() {
        let gpu_grant = Allocation { gpu_hours: 100, cpu_hours: 0 };
        assert_eq!(gpu_grant.accepts(1), Ok(()));
        assert_eq!(gpu_grant.accepts(0), Err(Mismatch::GpuOnly));
        // CPU time of GPU jobs is recorded, not limited.
        assert_eq!(gpu_grant.share(Amount { gpu_ms: 50 * HOUR_MS, cpu_ms: 1_000_000 * HOUR_MS }), 0.5);
        let cpu_grant = Allocation { gpu_hours: 0, cpu_hours: 10 };
        assert_eq!(cpu_grant.accepts(0), Ok(()));
        assert_eq!(cpu_grant.accepts(2), Err(Mismatch::NoGpuHours));
        assert_eq!(cpu_grant.share(Amount { gpu_ms: 0, cpu_ms: 5 * HOUR_MS }), 0.5);
        let both = Allocation { gpu_hours: 10, cpu_hours: 100 };
        assert_eq!(both.share(Amount { gpu_ms: 2 * HOUR_MS, cpu_ms: 80 * HOUR_MS }), 0.8);
        assert_eq!(Allocation { gpu_hours: 0, cpu_hours: 0 }.accepts(0), Err(Mismatch::Empty));
        assert_eq!(cpu_grant.share(Amount { gpu_ms: 1, cpu_ms: 0 }), f64::INFINITY);
        assert_eq!(gpu_grant.share(Amount::default()), 0.0);
    }

    #[test]
    fn amounts_are_exact_to_the_millisecond() {
        // 0.26 s on 1,000 CPUs is 260 CPU-seconds, not 1,000.
        assert_eq!(Amount::of(0, 1000, 260), Amount { gpu_ms: 0, cpu_ms: 260_000 });
        assert_eq!(Amount::of(2, 4, -5), Amount::default());
    }
}
