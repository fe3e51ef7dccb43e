//! Job arrays, in Slurm's syntax (`sbatch --array`): `0-999%50` is one submission of 1,000
//! tasks, numbered 0 to 999, at most 50 of them running at once; `1,3,5-9:2` lists numbers,
//! ranges and ranges with a step. Each task is a job of its own, told its number in
//! `GRAPPE_ARRAY_TASK_ID`.

use crate::account::InvalidInput;

/// The most tasks one array has, and the highest task number.
pub const MAX_ARRAY_TASKS: usize = 10_000;
pub const MAX_TASK_ID: i64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArraySpec {
    /// The task numbers, ascending, each once.
    pub tasks: Vec<i64>,
    /// At most this many running at once (`%N`); none: no limit but the scheduler's.
    pub limit: Option<i64>,
}

pub fn parse_array(text: &str) -> Result<ArraySpec, InvalidInput> {
    let refuse = |problem: String| InvalidInput::field("array", problem);
    let (list, limit) = match text.trim().split_once('%') {
        Some((list, limit)) => {
            let parsed = limit.trim().parse::<i64>().ok().filter(|limit| *limit >= 1);
            (list, Some(parsed.ok_or_else(|| refuse(format!("`%{limit}`: how many run at once, 1 or more")))?))
        }
        None => (text.trim(), None),
    };
    let number = |raw: &str| {
        raw.trim()
            .parse::<i64>()
            .ok()
            .filter(|id| (0..=MAX_TASK_ID).contains(id))
            .ok_or_else(|| refuse(format!("`{raw}`: a task number from 0 to {MAX_TASK_ID}")))
    };
    let mut tasks = Vec::new();
    for item in list.split(',') {
        let (range, step) = match item.split_once(':') {
            Some((range, step)) => {
                let step = step.trim().parse::<i64>().ok().filter(|step| *step >= 1);
                (range, step.ok_or_else(|| refuse(format!("`{item}`: a step of 1 or more after `:`")))?)
            }
            None => (item, 1),
        };
        let (first, last) = match range.split_once('-') {
            Some((first, last)) => (number(first)?, number(last)?),
            None => {
                let only = number(range)?;
                (only, only)
            }
        };
        if last < first {
            return Err(refuse(format!("`{item}`: a range goes up")));
        }
        let count = (last - first) / step + 1;
        if tasks.len() as i64 + count > MAX_ARRAY_TASKS as i64 {
            return Err(refuse(format!("more than {MAX_ARRAY_TASKS} tasks")));
        }
        tasks.extend((0..count).map(|n| first + n * step));
    }
    tasks.sort_unstable();
    tasks.dedup();
    Ok(ArraySpec { tasks, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurms_syntax_gives_the_tasks_and_the_limit() {
        assert_eq!(parse_array("0-999%50").unwrap().tasks.len(), 1000);
        assert_eq!(parse_array("0-999%50").unwrap().limit, Some(50));
        assert_eq!(parse_array("1,3,5-9:2").unwrap(), ArraySpec { tasks: vec![1, 3, 5, 7, 9], limit: None });
        assert_eq!(parse_array("4,2,2").unwrap().tasks, [2, 4], "sorted, once each");
        assert_eq!(parse_array("0-9999").unwrap().tasks.len(), MAX_ARRAY_TASKS);
        for bad in ["", "0-10000", "5-1", "a", "1-3:0", "0-3%0", "0-3%x", "-1", "0-2000000"] {
            assert!(parse_array(bad).is_err(), "{bad}");
        }
    }
}
