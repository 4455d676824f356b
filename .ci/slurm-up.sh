#!/usr/bin/env bash
# Bring up a real one-node Slurm cluster on this host (munged + slurmctld + slurmd), for CI and
# for local tests of submitit job arrays. Run as root:  bash .ci/slurm-up.sh
#
# - installs Debian's slurm-wlm and munge only if they are missing;
# - node = this host (`hostname -s`), CPUs/memory as `slurmd -C` reports them;
#   one default partition `debug`; select/cons_tres + CR_CPU, so 1-CPU tasks share the node;
# - no cgroups (proctrack/linuxproc, task/none);
# - by default no accounting database, so `sacct` does NOT work and submitit's job.state stays
#   "UNKNOWN" (see the note at the end of this file). SLURM_UP_ACCOUNTING=1 adds MariaDB +
#   slurmdbd (Debian packages, installed if missing), so sacct/job.state work and unknown
#   accounts/QOS are rejected at submit time; the accounting database is recreated on each run;
# - idempotent: a second run stops the daemons it started before (pid files) and starts them
#   again with a clean controller state (slurmctld -c), which drops any queued/running job;
# - waits (bounded) until `sinfo` reports the node idle, or prints one error with the
#   tails of the daemon logs and exits 1.
# Environment knobs: SLURM_UP_WAIT_S (default 45), SLURM_UP_PARTITION (default debug),
#   SLURM_UP_ACCOUNTING (0 or 1, default 0).
set -euo pipefail

wait_s="${SLURM_UP_WAIT_S:-45}"
partition="${SLURM_UP_PARTITION:-debug}"
accounting="${SLURM_UP_ACCOUNTING:-0}"
cluster=gruci
conf_dir=/etc/slurm
log_dir=/var/log/slurm
ctld_state=/var/spool/slurmctld
slurmd_spool=/var/spool/slurmd
ctld_pid=/run/slurmctld.pid
slurmd_pid=/run/slurmd.pid
dbd_pid=/run/slurmdbd.pid
start_ts=$SECONDS

log_tails() {
  local f
  for f in "$log_dir/slurmctld.log" "$log_dir/slurmd.log" "$log_dir/slurmdbd.log" \
    /var/log/munge/munged.log; do
    [[ -s "$f" ]] || continue
    echo "----- tail -n 20 $f -----" >&2
    tail -n 20 "$f" >&2 || true
  done
}

die() {
  echo "slurm-up: ERROR: $*" >&2
  log_tails
  exit 1
}

# Stop daemons this script started before, found by their pid files (never by name).
# Usage: stop_daemons name pidfile [name pidfile ...]; TERM all, wait up to 10 s, then KILL.
stop_daemons() {
  local pids=() pid i alive
  while (($# >= 2)); do
    pid="$(cat "$2" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" == "$1" ]]; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$2"
    shift 2
  done
  for ((i = 0; i < 100; i++)); do
    alive=0
    for pid in "${pids[@]}"; do [[ -d "/proc/$pid" ]] && alive=1; done
    ((alive)) || return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  sleep 0.2
}

[[ "$(id -u)" == 0 ]] || die "must run as root"

# --- 1. packages -------------------------------------------------------------------------------
missing=()
command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
  && command -v sbatch >/dev/null 2>&1 || missing+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || missing+=(munge)
if [[ "$accounting" == 1 ]]; then
  command -v slurmdbd >/dev/null 2>&1 || missing+=(slurmdbd)
  [[ -x /usr/sbin/mariadbd ]] || missing+=(mariadb-server)
fi
if ((${#missing[@]})); then
  echo "slurm-up: installing ${missing[*]} ..."
  apt_log="$(mktemp)"
  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    die "apt-get install ${missing[*]} failed"
  fi
  rm -f "$apt_log"
fi

# --- 2. munge ----------------------------------------------------------------------------------
id munge >/dev/null 2>&1 || die "user 'munge' missing (package munge not installed correctly?)"
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  (umask 077 && dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none)
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  # --force: take over a stale socket left by a munged that died
  runuser -u munge -- /usr/sbin/munged --force </dev/null >/dev/null 2>&1 \
    || die "munged did not start"
  for ((i = 0; i < 50; i++)); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || die "munged started but munge/unmunge fails"
fi

# --- 3. configuration --------------------------------------------------------------------------
stop_daemons slurmd "$slurmd_pid" slurmctld "$ctld_pid" slurmdbd "$dbd_pid"

host="$(hostname -s)"
# e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=2 CoresPerSocket=1 ThreadsPerCore=1 RealMemory=24105"
node_hw="$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=')" || die "slurmd -C printed no NodeName line"
node_hw="$(sed -E 's/^NodeName=[^ ]+ *//' <<<"$node_hw")"

install -d -m 0755 "$conf_dir" "$log_dir" "$slurmd_spool"
install -d -m 0700 "$ctld_state"

cat >"$conf_dir/slurm.conf" <<EOF
# Written by .ci/slurm-up.sh: a one-node cluster for tests. Re-run the script to regenerate.
ClusterName=${cluster}
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s).
AuthInfo=cred_expire=15
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
# No cgroups: processes are tracked by parent pid, tasks are not bound or confined.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$(if [[ "$accounting" == 1 ]]; then
  printf '%s\n' "AccountingStorageType=accounting_storage/slurmdbd" \
    "AccountingStorageHost=${host}" "AccountingStorageEnforce=associations,qos"
else
  echo "AccountingStorageType=accounting_storage/none"
fi)
# Final state of every job, one line each (also without slurmdbd, where sacct does not work).
JobCompType=jobcomp/filetxt
JobCompLoc=${log_dir}/jobcomp.log
SchedulerType=sched/backfill
# Start batch jobs right after submission (default batch_sched_delay=3 s adds ~2 s per job), and
# retest pending jobs every 5 s (defaults 60 s / 30 s: a requeued job waited ~40 s to restart).
SchedulerParameters=batch_sched_delay=0,sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmctldTimeout=10
SlurmdTimeout=10
MessageTimeout=10
KillWait=5
InactiveLimit=0
# Reject at submit time what could never run (too many CPUs, too long, ...) instead of pending forever.
EnforcePartLimits=ALL
Waittime=0
MinJobAge=300
StateSaveLocation=${ctld_state}
SlurmdSpoolDir=${slurmd_spool}
SlurmctldPidFile=${ctld_pid}
SlurmdPidFile=${slurmd_pid}
SlurmctldLogFile=${log_dir}/slurmctld.log
SlurmdLogFile=${log_dir}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=${host} NodeAddr=127.0.0.1 ${node_hw} State=UNKNOWN
PartitionName=${partition} Nodes=${host} Default=YES MaxTime=7-00:00:00 State=UP
EOF

# --- 4. accounting (optional): MariaDB + slurmdbd ----------------------------------------------
if [[ "$accounting" == 1 ]]; then
  if ! mariadb-admin ping >/dev/null 2>&1; then
    /etc/init.d/mariadb start >/dev/null 2>&1 || die "MariaDB did not start (/etc/init.d/mariadb start)"
  fi
  db_pass="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  # A fresh database each run, like the clean controller state (slurmctld -c) below.
  mariadb -e "DROP DATABASE IF EXISTS slurm_acct_db; CREATE DATABASE slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost';
    ALTER USER 'slurm'@'localhost' IDENTIFIED BY '${db_pass}';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" || die "could not create slurm_acct_db"
  (umask 077 && cat >"$conf_dir/slurmdbd.conf" <<EOF
# Written by .ci/slurm-up.sh (SLURM_UP_ACCOUNTING=1).
AuthType=auth/munge
DbdHost=${host}
DbdAddr=127.0.0.1
SlurmUser=root
DebugLevel=info
LogFile=${log_dir}/slurmdbd.log
PidFile=${dbd_pid}
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=${db_pass}
StorageLoc=slurm_acct_db
EOF
  )
  [[ -s "$log_dir/slurmdbd.log" ]] && mv -f "$log_dir/slurmdbd.log" "$log_dir/slurmdbd.log.old"
  slurmdbd </dev/null >>"$log_dir/slurmdbd.log" 2>&1 || die "slurmdbd failed to start"
  for ((i = 0; i < wait_s * 4; i++)); do
    sacctmgr -n list cluster >/dev/null 2>&1 && break
    sleep 0.25
  done
  sacctmgr -i add cluster "$cluster" >/dev/null 2>&1 \
    || die "slurmdbd did not come up (sacctmgr add cluster ${cluster} failed)"
else
  rm -f "$conf_dir/slurmdbd.conf"
fi

# --- 5. daemons --------------------------------------------------------------------------------
for f in slurmctld slurmd; do
  [[ -s "$log_dir/$f.log" ]] && mv -f "$log_dir/$f.log" "$log_dir/$f.log.old"
done
# -c: start with a clean controller state (no jobs or node states from an earlier run)
slurmctld -c </dev/null >>"$log_dir/slurmctld.log" 2>&1 || die "slurmctld failed to start"
slurmd </dev/null >>"$log_dir/slurmd.log" 2>&1 || die "slurmd failed to start"

state=""
deadline=$((SECONDS + wait_s))
while ((SECONDS < deadline)); do
  state="$(sinfo -h -o %T -p "$partition" 2>/dev/null | head -n1 || true)"
  case "$state" in
    idle) break ;;
    drain* | down* | fail*)
      scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 0.5
done
[[ "$state" == idle ]] || die "Slurm did not come up within ${wait_s}s (sinfo state: '${state:-none}')"

echo "slurm-up: cluster up in $((SECONDS - start_ts))s: node ${host} (${node_hw}), partition ${partition}, accounting $([[ "$accounting" == 1 ]] && echo slurmdbd || echo none), logs in ${log_dir}"

# Note for submitit users: submitit polls `sacct` for job states. Without SLURM_UP_ACCOUNTING=1
# sacct fails, so job.state is "UNKNOWN" and job.done() becomes true only once a task has
# written its result pickle: job.result() of a task killed from outside (scancel, node failure)
# never returns. Poll with a deadline, or check `squeue -h -j <job_id>` before calling result().
