//! What one job start costs, and what the sandbox adds to it: `N` runs of `true` through the real
//! job shim, one at a time, each timed from launch to its end as the executor reports it (the
//! job's processes gone, its control group removed). The ways to start are taken in turn, round
//! after round, so that the machine's drift falls on all of them: a plain fork and exec of
//! `true`; the shim unsandboxed; the shim with the sandbox this machine gives (bubblewrap as root
//! and setpriv here); and, as root, bubblewrap as the job's uid in a user namespace.
//! `cargo bench -p grappe-exec --bench start_cost [-- N]` (after `scripts/build.sh`,
//! for `target/release/grappe-shim`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use grappe_exec::cgroup::Cgroups;
use grappe_exec::sandbox::{self, Isolation, View};
use grappe_exec::{ExecConfig, Finished, LaunchSpec, LocalExecutor};
use tokio::sync::mpsc;

struct Way {
    name: String,
    executor: Option<(LocalExecutor, mpsc::Receiver<Finished>, mpsc::Receiver<grappe_exec::MetricLine>)>,
    times: Vec<Duration>,
}

/// `job` differs between ways: a run's control group is removed after its end is reported, so two
/// ways sharing a job and run number would race for one group.
async fn start_once(way: &mut Way, job: i64, dir: &Path, run: i64) {
    let started = Instant::now();
    let Some((executor, finished_rx, _)) = &mut way.executor else {
        std::process::Command::new("true").status().expect("true");
        way.times.push(started.elapsed());
        return;
    };
    let identity = grappe_exec::running_as_root().then_some((200_999, 200_999));
    let run_dir = dir.join(format!("{job}-{run}"));
    let work = run_dir.join("work");
    std::fs::create_dir_all(&work).expect("work directory");
    if let Some((uid, gid)) = identity {
        std::os::unix::fs::chown(&work, Some(uid), Some(gid)).expect("chown");
    }
    let spec = LaunchSpec {
        job_id: job,
        run,
        argv: vec!["true".to_owned()],
        env: vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())],
        workdir: work,
        writable: vec![],
        inputs: vec![],
        log_path: run_dir.join("output.log"),
        run_dir,
        cpus: 1,
        memory_mb: 256,
        gpu_ids: vec![],
        network: true,
        identity,
        time_limit_s: 60,
        log_cap_bytes: 1 << 20,
    };
    let started = Instant::now();
    executor.launch(spec).await.expect("launch");
    let finished = finished_rx.recv().await.expect("finished");
    way.times.push(started.elapsed());
    assert_eq!(finished.exit, grappe_exec::Exit::Code(0), "{}: {finished:?}", way.name);
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0
}

fn main() {
    let count: usize = std::env::args().skip(1).find_map(|arg| arg.parse().ok()).unwrap_or(300);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shim_program = root.join("target/release/grappe-shim");
    assert!(shim_program.is_file(), "build it first: cargo build --release -p grappe");
    let dir = std::env::temp_dir().join(format!("grappe-start-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let cgroups = Cgroups::detect(&format!("grappe/bench-{}", std::process::id())).ok();
    let here = sandbox::probe(None, None, !grappe_exec::running_as_root()).expect("a sandbox on this machine");
    let mut isolations = vec![Isolation::Unsandboxed, here.clone()];
    let userns = Isolation::UserNamespace { bwrap: PathBuf::from("/usr/bin/bwrap") };
    if here != userns {
        isolations.push(userns);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut ways = vec![Way { name: "fork and exec of `true`".to_owned(), executor: None, times: Vec::new() }];
    for isolation in isolations {
        let (finished_tx, finished_rx) = mpsc::channel(16);
        let (metrics_tx, metrics_rx) = mpsc::channel(16);
        let name = match isolation {
            Isolation::Unsandboxed => "shim, unsandboxed".to_owned(),
            ref other => format!("shim, sandbox: {}", other.describe()),
        };
        let config = ExecConfig {
            shim_program: shim_program.clone(),
            isolation,
            cgroups: cgroups.clone(),
            view: View::standard(&[], vec![dir.clone()]),
            max_procs: 64,
        };
        let executor = LocalExecutor::new(config, finished_tx, metrics_tx, "GRAPPE_METRIC ");
        ways.push(Way { name, executor: Some((executor, finished_rx, metrics_rx)), times: Vec::new() });
    }
    runtime.block_on(async {
        for round in 0..count + 10 {
            for (job, way) in (1..).zip(&mut ways) {
                start_once(way, job, &dir, round as i64 + 1).await;
            }
            // The first rounds warm the caches up.
            if round == 9 {
                ways.iter_mut().for_each(|way| way.times.clear());
            }
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{count} starts of `true` each, one at a time, taken in turn; control groups: {}",
        cgroups.as_ref().map_or_else(|| "none".to_owned(), Cgroups::describe)
    );
    println!();
    println!("| way | p50 ms | p90 ms | p99 ms |");
    println!("|---|---|---|---|");
    for way in &mut ways {
        way.times.sort();
        println!(
            "| {} | {:.2} | {:.2} | {:.2} |",
            way.name,
            percentile(&way.times, 0.5),
            percentile(&way.times, 0.9),
            percentile(&way.times, 0.99)
        );
    }
    println!();
    for way in &ways[2..] {
        println!(
            "{} adds {:.2} ms per start to the unsandboxed shim (p50).",
            way.name,
            percentile(&way.times, 0.5) - percentile(&ways[1].times, 0.5)
        );
    }
}
