//! Standard Workload Format (Parallel Workloads Archive): `;` header comments, then one job a
//! line of 18 whitespace-separated numeric fields. Only the fields the simulator uses are kept.

/// A trace error names the line (1-based) and the field (1-based, 0 for the whole line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, field {field}: {message}")]
pub struct SwfError {
    pub line: usize,
    pub field: usize,
    pub message: String,
}

/// One job line, as the trace says it (fields that say "unknown" are -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwfJob {
    /// Field 1.
    pub number: i64,
    /// Field 2, seconds.
    pub submit_s: i64,
    /// Field 4, seconds.
    pub run_s: i64,
    /// Field 5.
    pub allocated_procs: i64,
    /// Field 8.
    pub requested_procs: i64,
    /// Field 9, seconds.
    pub requested_s: i64,
    /// Field 12.
    pub user: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwfHeader {
    pub max_procs: Option<i64>,
    pub max_nodes: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub header: SwfHeader,
    pub jobs: Vec<SwfJob>,
}

pub const FIELDS: usize = 18;

/// A field as an integer. Some archive traces write decimals (`12.00`): they are truncated
/// toward zero, which is what the archive's own tools do with seconds and counts.
fn number(text: &str, line: usize, field: usize) -> Result<i64, SwfError> {
    if let Ok(value) = text.parse::<i64>() {
        return Ok(value);
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value.abs() < 9.0e15 => Ok(value.trunc() as i64),
        _ => Err(SwfError { line, field, message: format!("`{text}` is not a number") }),
    }
}

fn header_value(comment: &str, key: &str) -> Option<i64> {
    let rest = comment.trim().strip_prefix(key)?.trim_start().strip_prefix(':')?;
    rest.split_whitespace().next()?.parse().ok()
}

pub fn parse(text: &str) -> Result<Trace, SwfError> {
    let mut trace = Trace::default();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.trim();
        if content.is_empty() {
            continue;
        }
        if let Some(comment) = content.strip_prefix(';') {
            if let Some(value) = header_value(comment, "MaxProcs") {
                trace.header.max_procs = Some(value);
            }
            if let Some(value) = header_value(comment, "MaxNodes") {
                trace.header.max_nodes = Some(value);
            }
            continue;
        }
        let mut fields = [0i64; FIELDS];
        let mut count = 0;
        for (position, token) in content.split_whitespace().enumerate() {
            if position >= FIELDS {
                return Err(SwfError { line, field: position + 1, message: format!("more than {FIELDS} fields") });
            }
            fields[position] = number(token, line, position + 1)?;
            count = position + 1;
        }
        if count < FIELDS {
            return Err(SwfError {
                line,
                field: count + 1,
                message: format!("missing: the line has {count} fields, SWF has {FIELDS}"),
            });
        }
        trace.jobs.push(SwfJob {
            number: fields[0],
            submit_s: fields[1],
            run_s: fields[3],
            allocated_procs: fields[4],
            requested_procs: fields[7],
            requested_s: fields[8],
            user: fields[11],
        });
    }
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_and_jobs() {
        let text = "; MaxNodes: 256\n; MaxProcs: 512\n\n1 0 -1 100 4 -1 -1 8 200 -1 1 7 -1 -1 0 -1 -1 -1\n";
        let trace = parse(text).unwrap();
        assert_eq!(trace.header, SwfHeader { max_procs: Some(512), max_nodes: Some(256) });
        assert_eq!(
            trace.jobs,
            vec![SwfJob {
                number: 1,
                submit_s: 0,
                run_s: 100,
                allocated_procs: 4,
                requested_procs: 8,
                requested_s: 200,
                user: 7
            }]
        );
    }

    #[test]
    fn errors_name_line_and_field() {
        let check = |text: &str, line: usize, field: usize| {
            let error = parse(text).unwrap_err();
            assert_eq!((error.line, error.field), (line, field), "{error}");
        };
        check("; c\n1 0 -1 100 x -1 -1 8 200 -1 1 7 -1 -1 0 -1 -1 -1\n", 2, 5);
        check("1 0 -1 100 4\n", 1, 6);
        check("1 0 -1 100 4 -1 -1 8 200 -1 1 7 -1 -1 0 -1 -1 -1 9\n", 1, 19);
        check("1 0 -1 1e999 4 -1 -1 8 200 -1 1 7 -1 -1 0 -1 -1 -1\n", 1, 4);
    }

    #[test]
    fn decimals_are_truncated() {
        let trace = parse("1 0.5 -1 99.9 4 -1 -1 8 200 -1 1 7 -1 -1 0 -1 -1 -1").unwrap();
        assert_eq!((trace.jobs[0].submit_s, trace.jobs[0].run_s), (0, 99));
    }
}
