#!/usr/bin/env bash
# Starts (or stops) the services the tests talk to, on private ports and directories, so that
# nothing else on the machine is touched: a PostgreSQL server, a single-node Slurm (munge,
# slurmctld, slurmd) on private ports with its own munge socket, and an S3 server (s3s-fs, its
# objects plain files under the state directory).
#   scripts/test-services.sh start   # idempotent; prints the variables to export
#   scripts/test-services.sh stop
set -euo pipefail

state_dir=${GRAPPE_TEST_STATE:-/tmp/grappe-test-services}
pg_port=${GRAPPE_TEST_PG_PORT:-54329}
pg_dir=$state_dir/postgres
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pg_bin" ] || { echo "PostgreSQL is not installed: run scripts/install-test-deps.sh" >&2; exit 1; }

# PostgreSQL refuses to run as root: run it as the `postgres` user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  mkdir -p "$state_dir"
  if [ "$(id -u)" = 0 ]; then chown postgres "$state_dir"; fi
  if [ ! -s "$pg_dir/PG_VERSION" ]; then
    as_pg "$pg_bin/initdb" -D "$pg_dir" -U grappe --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! as_pg "$pg_bin/pg_ctl" -D "$pg_dir" status >/dev/null 2>&1; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir" -l "$pg_dir/server.log" -w -t 60 \
      -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
  fi
  echo "export GRAPPE_TEST_POSTGRES=postgres://grappe@127.0.0.1:$pg_port/postgres"
  start_slurm
  start_s3
}

s3_port=${GRAPPE_TEST_S3_PORT:-18014}
s3_dir=$state_dir/s3
s3_bucket=grappe-test

start_s3() {
  local s3s_fs=${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs
  [ -x "$s3s_fs" ] || { echo "s3s-fs is not installed: run scripts/install-test-deps.sh" >&2; exit 1; }
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null; then
    # A fresh server starts empty: tests remove their objects' files, not the metadata files
    # s3s-fs keeps beside them. It keeps a bucket as a folder of its root.
    rm -rf "$s3_dir/data"
    mkdir -p "$s3_dir/data/$s3_bucket"
    nohup "$s3s_fs" --host 127.0.0.1 --port "$s3_port" --access-key grappe-test --secret-key grappe-test-secret \
      "$s3_dir/data" >"$s3_dir/s3s-fs.log" 2>&1 &
    echo $! >"$s3_dir/s3s-fs.pid"
    for _ in $(seq 1 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break
      sleep 0.1
    done
    (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null || { echo "s3s-fs did not come up: $s3_dir/s3s-fs.log" >&2; exit 1; }
  fi
  mkdir -p "$s3_dir/data/$s3_bucket"
  echo "export GRAPPE_TEST_S3='s3://$s3_bucket/tests?endpoint=http://127.0.0.1:$s3_port'"
  echo "export GRAPPE_TEST_S3_DIR=$s3_dir/data/$s3_bucket/tests"
  echo "export AWS_ACCESS_KEY_ID=grappe-test"
  echo "export AWS_SECRET_ACCESS_KEY=grappe-test-secret"
}

stop_s3() {
  [ -s "$s3_dir/s3s-fs.pid" ] && kill "$(cat "$s3_dir/s3s-fs.pid")" 2>/dev/null || true
  rm -f "$s3_dir/s3s-fs.pid"
}

slurm_dir=$state_dir/slurm
slurm_conf=$slurm_dir/slurm.conf
munge_socket=$slurm_dir/munge.socket

start_slurm() {
  mkdir -p "$slurm_dir/state" "$slurm_dir/spool" "$slurm_dir/log"
  local host cpus memory_mb
  host=$(hostname -s)
  cpus=$(nproc)
  memory_mb=$(( $(awk '/MemTotal/ { print $2 }' /proc/meminfo) / 1024 - 1024 ))
  cat >"$slurm_conf" <<CONF
ClusterName=grappe-test
SlurmctldHost=$host
SlurmctldPort=${GRAPPE_TEST_SLURMCTLD_PORT:-16817}
SlurmdPort=${GRAPPE_TEST_SLURMD_PORT:-16818}
AuthType=auth/munge
AuthInfo=socket=$munge_socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$slurm_dir/state
SlurmdSpoolDir=$slurm_dir/spool
SlurmctldPidFile=$slurm_dir/slurmctld.pid
SlurmdPidFile=$slurm_dir/slurmd.pid
SlurmctldLogFile=$slurm_dir/log/slurmctld.log
SlurmdLogFile=$slurm_dir/log/slurmd.log
SchedulerType=sched/backfill
SchedulerParameters=${GRAPPE_TEST_SLURM_SCHED:-batch_sched_delay=0,sched_min_interval=0}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=100
CONF
  if ! [ -S "$munge_socket" ] || ! munge -n -S "$munge_socket" 2>/dev/null | unmunge -S "$munge_socket" >/dev/null 2>&1; then
    rm -f "$munge_socket" "$slurm_dir/munged.pid"
    munged --force --socket="$munge_socket" --pid-file="$slurm_dir/munged.pid" \
      --log-file="$slurm_dir/log/munged.log" --seed-file="$slurm_dir/munged.seed"
  fi
  if ! SLURM_CONF=$slurm_conf scontrol ping 2>/dev/null | grep -q UP; then
    SLURM_CONF=$slurm_conf slurmctld
    SLURM_CONF=$slurm_conf slurmd
  fi
  for _ in $(seq 1 100); do
    SLURM_CONF=$slurm_conf sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && break
    sleep 0.2
  done
  SLURM_CONF=$slurm_conf sinfo -h -o %t | grep -qE '^(idle|mix|alloc)' || { echo "Slurm did not come up" >&2; exit 1; }
  echo "export SLURM_CONF=$slurm_conf"
  echo "export GRAPPE_TEST_SLURM=1"
}

stop_slurm() {
  for name in slurmd slurmctld munged; do
    [ -s "$slurm_dir/$name.pid" ] && kill "$(cat "$slurm_dir/$name.pid")" 2>/dev/null || true
  done
}

stop() {
  stop_s3
  stop_slurm
  if [ -s "$pg_dir/PG_VERSION" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
