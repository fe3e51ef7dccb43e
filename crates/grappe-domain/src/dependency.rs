//! Job dependencies, in Slurm's syntax (`sbatch --dependency`): `afterok:12:13,afterany:14`
//! holds a job until job 12 and 13 completed and job 14 ended however it ended. Every condition
//! must hold (Slurm's `,`; its `?`, any of them, is not taken). A condition that can no longer
//! hold (`afterok` on a job that failed) ends the waiting job: it would wait forever.

use crate::account::InvalidInput;

/// The most jobs one job may wait for.
pub const MAX_DEPENDENCIES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyKind {
    /// Once the job completed (exit code 0).
    AfterOk,
    /// Once the job ended, however.
    AfterAny,
    /// Once the job ended other than completed (failed, cancelled, out of time).
    AfterNotOk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dependency {
    pub kind: DependencyKind,
    pub job: i64,
}

impl DependencyKind {
    fn name(self) -> &'static str {
        match self {
            DependencyKind::AfterOk => "afterok",
            DependencyKind::AfterAny => "afterany",
            DependencyKind::AfterNotOk => "afternotok",
        }
    }

    /// Whether the condition holds for a job now in `state`: `None` while that job has not
    /// ended, then `Some(true)` or `Some(false)` for good.
    pub fn holds(self, state: &str) -> Option<bool> {
        if !crate::compute::ended(state) {
            return None;
        }
        Some(match self {
            DependencyKind::AfterOk => state == "completed",
            DependencyKind::AfterAny => true,
            DependencyKind::AfterNotOk => state != "completed",
        })
    }
}

/// Reads `afterok:12:13,afterany:14` (an empty text: none).
pub fn parse_dependencies(text: &str) -> Result<Vec<Dependency>, InvalidInput> {
    let refuse = |problem: String| InvalidInput::field("dependency", problem);
    let mut dependencies = Vec::new();
    for condition in text.split(',').map(str::trim).filter(|condition| !condition.is_empty()) {
        let mut parts = condition.split(':');
        let kind = match parts.next().unwrap_or_default() {
            "afterok" => DependencyKind::AfterOk,
            "afterany" => DependencyKind::AfterAny,
            "afternotok" => DependencyKind::AfterNotOk,
            other => return Err(refuse(format!("`{other}`: afterok, afterany or afternotok, as `afterok:12:13`"))),
        };
        let mut any = false;
        for id in parts {
            let job = id.trim().parse::<i64>().ok().filter(|job| *job > 0);
            let job = job.ok_or_else(|| refuse(format!("`{id}` in `{condition}` is not a job id")))?;
            dependencies.push(Dependency { kind, job });
            any = true;
        }
        if !any {
            return Err(refuse(format!("`{condition}` names no job: `{}:ID[:ID...]`", kind.name())));
        }
    }
    if dependencies.len() > MAX_DEPENDENCIES {
        return Err(refuse(format!("{} jobs, at most {MAX_DEPENDENCIES}", dependencies.len())));
    }
    Ok(dependencies)
}

/// The dependencies in Slurm's syntax, one condition per job: what is stored and shown.
pub fn format_dependencies(dependencies: &[Dependency]) -> String {
    let conditions: Vec<String> =
        dependencies.iter().map(|dependency| format!("{}:{}", dependency.kind.name(), dependency.job)).collect();
    conditions.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use DependencyKind::{AfterAny, AfterNotOk, AfterOk};

    #[test]
    fn slurms_syntax_is_read_and_written_back() {
        let read = parse_dependencies(" afterok:12:13, afterany:14 ").unwrap();
        let expected = [(AfterOk, 12), (AfterOk, 13), (AfterAny, 14)].map(|(kind, job)| Dependency { kind, job });
        assert_eq!(read, expected);
        assert_eq!(format_dependencies(&read), "afterok:12,afterok:13,afterany:14");
        assert_eq!(parse_dependencies("").unwrap(), []);
        for bad in ["after:1", "afterok", "afterok:x", "afterok:-3", "afterok:1?afterany:2"] {
            assert!(parse_dependencies(bad).is_err(), "{bad}");
        }
        let many = format!("afterany:{}", vec!["1"; MAX_DEPENDENCIES + 1].join(":"));
        assert!(parse_dependencies(&many).is_err());
    }

    #[test]
    fn a_condition_holds_waits_or_never_will() {
        assert_eq!(AfterOk.holds("running"), None);
        assert_eq!(AfterOk.holds("pending"), None);
        assert_eq!(AfterOk.holds("completed"), Some(true));
        assert_eq!(AfterOk.holds("failed"), Some(false));
        assert_eq!(AfterNotOk.holds("timeout"), Some(true));
        assert_eq!(AfterNotOk.holds("completed"), Some(false));
        assert_eq!(AfterAny.holds("cancelled"), Some(true));
    }
}
