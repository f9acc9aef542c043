#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the `slurm`-marked tests (docs/cluster.md).
#
#   .ci/slurm-cluster.sh install   apt-get install munge, slurmctld, slurmd, slurm-client (Debian's Slurm 22.05)
#   .ci/slurm-cluster.sh start     install if needed, write /etc/slurm/slurm.conf, start munged, slurmctld
#                                  and slurmd, and wait until the node takes jobs (idempotent)
#   .ci/slurm-cluster.sh stop      stop slurmd and slurmctld, and munged when this script started it
#   .ci/slurm-cluster.sh status    sinfo, or exit 1 when no cluster answers
#
# Runs as root (CI, a throwaway machine). One node named after this host, with the CPUs and memory
# `slurmd -C` reports, in one partition `debug`; the jobs run as the submitting user. No cgroups
# (proctrack/linuxproc, task/none) and no accounting database (accounting_storage/none: `sacct` has
# nothing to say; dtcore/slurm.py reads job states from squeue). KillWait=5: a cancelled job gets
# SIGKILL 5 s after SIGTERM (Slurm's default is 30 s). Daemon state and logs live under $STATE.
set -euo pipefail

STATE=${DTCLAIMS_SLURM_STATE:-/var/tmp/dtclaims-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by dtclaims .ci/slurm-cluster.sh"
NODE=$(hostname -s)

say() { echo "slurm-cluster: $*"; }

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
     && command -v sbatch >/dev/null; then
    return 0
  fi
  say "installing munge and Slurm from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null
}

write_conf() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    say "$CONF exists and was not written by this script; not touching it"
    exit 1
  fi
  local hw cpus mem
  hw=$(slurmd -C | head -1)
  cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
  mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
  mkdir -p "$(dirname "$CONF")" "$STATE/ctld" "$STATE/d"
  cat >"$CONF" <<EOF
$MARK
ClusterName=dtclaims
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
MinJobAge=600
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge /etc/munge/munge.key
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
  touch "$STATE/munged.ours"
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  say "munged did not start"; exit 1
}

start() {
  install
  write_conf
  start_munge
  running "$STATE/slurmctld.pid" || slurmctld -c     # -c: a fresh controller, no jobs from a last session
  running "$STATE/slurmd.pid" || slurmd
  for _ in $(seq 120); do
    case "$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)" in
      idle*|mixed*|allocated*) say "node $NODE is up: $(sinfo -h -o '%P %D %c CPUs %T')"; return 0 ;;
      drain*|down*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  say "the node did not come up; logs: $STATE/slurmctld.log $STATE/slurmd.log"
  tail -5 "$STATE/slurmctld.log" "$STATE/slurmd.log" 2>/dev/null || true
  exit 1
}

stop() {
  for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid"; do
    if running "$pidfile"; then kill "$(cat "$pidfile")"; fi
  done
  if [ -f "$STATE/munged.ours" ] && running /run/munge/munged.pid; then
    kill "$(cat /run/munge/munged.pid)"
  fi
  rm -f "$STATE/munged.ours"
  say "stopped"
}

status() { sinfo; }

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
