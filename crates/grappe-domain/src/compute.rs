//! A job as submitted, parsed once: the API, the CLI and the web form all build a
//! [`JobRequest`] and get a [`JobSpec`] or the reason why not. Every limit a submission must
//! respect is here: command and environment sizes, resources within what a node has, nodes
//! within what the executor offers.

use crate::account::{DisplayName, InvalidInput};

/// At most this many arguments, bytes in one argument, and bytes in the whole command.
pub const MAX_ARGS: usize = 1024;
pub const MAX_ARG_BYTES: usize = 64 * 1024;
pub const MAX_COMMAND_BYTES: usize = 128 * 1024;
/// At most this many declared variables, bytes in one value, and bytes in all of them.
pub const MAX_ENV_VARS: usize = 128;
pub const MAX_ENV_VALUE_BYTES: usize = 32 * 1024;
pub const MAX_ENV_BYTES: usize = 64 * 1024;
/// The longest time limit anyone may ask for (QoS caps are lower).
pub const MAX_TIME_LIMIT_S: i64 = 366 * 86_400;

/// Whether a job in `state` has ended, for good.
pub fn ended(state: &str) -> bool {
    matches!(state, "completed" | "failed" | "cancelled" | "timeout")
}

/// What one node of the executor offers, and how many nodes one job may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeShape {
    pub cpus: u32,
    pub gpus: u32,
    pub memory_mb: u64,
    /// 1 for the local executor: multi-node jobs need Slurm.
    pub max_nodes: u32,
}

/// A submission as it comes, from any of its sources. Resources are per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    pub command: Vec<String>,
    pub name: Option<String>,
    pub cpus: i64,
    pub gpus: Option<i64>,
    pub gpus_per_node: Option<i64>,
    pub memory_mb: i64,
    pub time_limit_s: i64,
    pub qos: String,
    pub env: Vec<(String, String)>,
    pub network: bool,
    pub nodes: i64,
}

/// A valid job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    command: Vec<String>,
    name: DisplayName,
    cpus: u32,
    gpus: u32,
    memory_mb: u64,
    time_limit_s: i64,
    qos: String,
    env: Vec<(String, String)>,
    network: bool,
    nodes: u32,
}

/// Variables Grappe sets for every job, which a job may not declare itself.
fn reserved(name: &str) -> bool {
    ["GRAPPE_", "SLURM_", "SBATCH_"].iter().any(|prefix| name.starts_with(prefix))
        || matches!(name, "HOME" | "CUDA_VISIBLE_DEVICES")
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

fn in_range(field: &'static str, value: i64, low: i64, high: i64, what: &str) -> Result<i64, InvalidInput> {
    if (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(InvalidInput::field(field, format!("is {value}; it must be between {low} and {high}{what}")))
    }
}

impl JobSpec {
    pub fn parse(request: JobRequest, node: &NodeShape) -> Result<JobSpec, InvalidInput> {
        let command = request.command;
        if command.first().is_none_or(String::is_empty) {
            return Err(InvalidInput::field("command", "must be a non-empty list of arguments"));
        }
        let command_bytes: usize = command.iter().map(String::len).sum();
        if command.len() > MAX_ARGS
            || command_bytes > MAX_COMMAND_BYTES
            || command.iter().any(|arg| arg.len() > MAX_ARG_BYTES || arg.contains('\0'))
        {
            return Err(InvalidInput::field(
                "command",
                format!(
                    "must have at most {MAX_ARGS} arguments of {MAX_ARG_BYTES} bytes, {MAX_COMMAND_BYTES} bytes in \
                     all, and no NUL"
                ),
            ));
        }
        if request.env.len() > MAX_ENV_VARS {
            return Err(InvalidInput::field("env", format!("has more than {MAX_ENV_VARS} variables")));
        }
        let mut env: Vec<(String, String)> = Vec::with_capacity(request.env.len());
        for (name, value) in request.env {
            if !valid_name(&name) {
                return Err(InvalidInput::field(
                    "env",
                    format!(
                        "`{}` is not a variable name (letters, digits and _, not first a digit)",
                        name.escape_debug()
                    ),
                ));
            }
            if reserved(&name) {
                return Err(InvalidInput::field(
                    "env",
                    format!("`{name}` is set by Grappe (GRAPPE_*, SLURM_*, SBATCH_*, HOME, CUDA_VISIBLE_DEVICES)"),
                ));
            }
            if value.len() > MAX_ENV_VALUE_BYTES || value.contains('\0') {
                return Err(InvalidInput::field(
                    "env",
                    format!("`{name}`: a value has at most {MAX_ENV_VALUE_BYTES} bytes and no NUL"),
                ));
            }
            if env.iter().any(|(existing, _)| *existing == name) {
                return Err(InvalidInput::field("env", format!("`{name}` is given twice")));
            }
            env.push((name, value));
        }
        if env.iter().map(|(name, value)| name.len() + value.len()).sum::<usize>() > MAX_ENV_BYTES {
            return Err(InvalidInput::field("env", format!("holds more than {MAX_ENV_BYTES} bytes")));
        }
        env.sort();
        if request.nodes > 1 && node.max_nodes <= 1 {
            return Err(InvalidInput::field(
                "nodes",
                "must be 1 here: this server runs jobs on its own machine; multi-node jobs need the Slurm executor \
                 (`grappe serve --executor slurm`)",
            ));
        }
        let nodes = in_range("nodes", request.nodes, 1, i64::from(node.max_nodes), "")?;
        let gpus = match (request.gpus, request.gpus_per_node) {
            (Some(gpus), Some(per_node)) if gpus != per_node => {
                return Err(InvalidInput::field(
                    "gpus_per_node",
                    format!("is {per_node} but `gpus` is {gpus}: give one of them (GPUs are counted per node)"),
                ));
            }
            (Some(gpus), _) | (None, Some(gpus)) => gpus,
            (None, None) => 0,
        };
        let machine = " (what a node has)";
        let cpus = in_range("cpus", request.cpus, 1, i64::from(node.cpus), machine)?;
        let gpus = in_range("gpus", gpus, 0, i64::from(node.gpus), machine)?;
        let memory_mb = in_range("memory_mb", request.memory_mb, 1, node.memory_mb as i64, machine)?;
        let time_limit_s = in_range("time_limit_s", request.time_limit_s, 1, MAX_TIME_LIMIT_S, "")?;
        let qos = request.qos.trim().to_owned();
        if qos.is_empty() || qos.len() > 32 {
            return Err(InvalidInput::field("qos", "must be a QoS name (dev, normal, long)"));
        }
        let name = DisplayName::parse("name", request.name.as_deref().unwrap_or(&command[0]))?;
        Ok(JobSpec {
            command,
            name,
            cpus: cpus as u32,
            gpus: gpus as u32,
            memory_mb: memory_mb as u64,
            time_limit_s,
            qos,
            env,
            network: request.network,
            nodes: nodes as u32,
        })
    }

    pub fn command(&self) -> &[String] {
        &self.command
    }

    pub fn name(&self) -> &DisplayName {
        &self.name
    }

    /// Per node.
    pub fn cpus(&self) -> u32 {
        self.cpus
    }

    /// Per node.
    pub fn gpus(&self) -> u32 {
        self.gpus
    }

    /// Per node.
    pub fn memory_mb(&self) -> u64 {
        self.memory_mb
    }

    pub fn time_limit_s(&self) -> i64 {
        self.time_limit_s
    }

    pub fn qos(&self) -> &str {
        &self.qos
    }

    /// The declared variables, sorted by name.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    pub fn network(&self) -> bool {
        self.network
    }

    pub fn nodes(&self) -> u32 {
        self.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: NodeShape = NodeShape { cpus: 8, gpus: 2, memory_mb: 16_000, max_nodes: 1 };

    fn request() -> JobRequest {
        JobRequest {
            command: vec!["python3".into(), "train.py".into()],
            name: None,
            cpus: 2,
            gpus: None,
            gpus_per_node: None,
            memory_mb: 1000,
            time_limit_s: 60,
            qos: "normal".into(),
            env: vec![],
            network: true,
            nodes: 1,
        }
    }

    fn check(change: impl FnOnce(&mut JobRequest), node: &NodeShape, expected: Result<(), &str>) {
        let mut raw = request();
        change(&mut raw);
        let parsed = JobSpec::parse(raw, node).map(|_| ()).map_err(|error| error.to_string());
        match (parsed, expected) {
            (Ok(()), Ok(())) => {}
            (Err(error), Err(part)) => assert!(error.contains(part), "`{error}` should say `{part}`"),
            (got, wanted) => panic!("got {got:?}, wanted {wanted:?}"),
        }
    }

    #[test]
    fn submissions_are_checked_in_one_place() {
        check(|_| {}, &NODE, Ok(()));
        check(|r| r.command.clear(), &NODE, Err("`command` must be a non-empty list"));
        check(|r| r.command = vec![String::new()], &NODE, Err("non-empty"));
        check(|r| r.command.push("a\0b".into()), &NODE, Err("no NUL"));
        check(|r| r.command = vec!["x".repeat(40_000); 4], &NODE, Err("131072 bytes in all"));
        check(|r| r.cpus = 0, &NODE, Err("`cpus` is 0; it must be between 1 and 8 (what a node has)"));
        check(|r| r.gpus = Some(3), &NODE, Err("`gpus` is 3"));
        check(|r| r.memory_mb = 16_001, &NODE, Err("`memory_mb`"));
        check(|r| r.time_limit_s = 0, &NODE, Err("`time_limit_s`"));
        check(|r| r.qos = " ".into(), &NODE, Err("`qos`"));
        check(|r| r.env = vec![("TOKENIZERS_PARALLELISM".into(), "false".into())], &NODE, Ok(()));
        check(|r| r.env = vec![("GRAPPE_JOB_ID".into(), "1".into())], &NODE, Err("is set by Grappe"));
        check(|r| r.env = vec![("HOME".into(), "/root".into())], &NODE, Err("is set by Grappe"));
        check(|r| r.env = vec![("1A".into(), "x".into())], &NODE, Err("is not a variable name"));
        check(|r| r.env = vec![("A=B".into(), "x".into())], &NODE, Err("is not a variable name"));
        check(|r| r.env = vec![("A".into(), "x".into()), ("A".into(), "y".into())], &NODE, Err("given twice"));
        check(|r| r.env = vec![("A".into(), "\0".into())], &NODE, Err("no NUL"));
        check(|r| r.env = (0..129).map(|i| (format!("V{i}"), String::new())).collect(), &NODE, Err("more than 128"));
        check(|r| r.env = (0..3).map(|i| (format!("V{i}"), "x".repeat(30_000))).collect(), &NODE, Err("65536 bytes"));
        check(|r| r.nodes = 2, &NODE, Err("multi-node jobs need the Slurm executor"));
        let cluster = NodeShape { max_nodes: 4, ..NODE };
        check(|r| r.nodes = 4, &cluster, Ok(()));
        check(|r| r.nodes = 5, &cluster, Err("`nodes` is 5"));
        check(
            |r| (r.gpus, r.gpus_per_node) = (Some(1), Some(2)),
            &cluster,
            Err("`gpus_per_node` is 2 but `gpus` is 1"),
        );
    }

    #[test]
    fn gpus_per_node_is_a_synonym_and_names_default_to_the_program() {
        let mut raw = request();
        raw.gpus_per_node = Some(2);
        raw.env = vec![("B".into(), "2".into()), ("A".into(), "1".into())];
        let spec = JobSpec::parse(raw, &NODE).unwrap();
        assert_eq!(spec.gpus(), 2);
        assert_eq!(spec.name().as_str(), "python3");
        assert_eq!(spec.env()[0].0, "A", "sorted");
    }
}
