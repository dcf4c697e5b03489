#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for lethe's Slurm tests, CI and trying `lethe submit`:
#
#   bash scripts/slurm-local.sh start    # prints `export SLURM_CONF=…`: eval it, or source the env file
#   bash scripts/slurm-local.sh status   # sinfo of the running cluster (exit 1 when none is up)
#   bash scripts/slurm-local.sh stop     # stops the daemons and removes the folder
#
# It uses Debian's own packages (slurm-wlm 22.05, munge), installed with apt-get when missing.
# `start` and `stop` run as root (through `sudo -n` when needed): the daemons run as root, with
# no systemd. Everything lives in one folder, $LETHE_SLURM_DIR (default /tmp/lethe-slurm):
# slurm.conf, the munge key and socket, state, spool, logs, pid files and `env` (`export
# SLURM_CONF=<folder>/slurm.conf`); nothing is written to /etc. One node named `hostname -s` with
# every CPU of the machine and 90% of its memory, one partition `debug`, no accounting database
# (`sacct` is unavailable: finished jobs are logged by jobcomp/filetxt in <folder>/log/jobcomp.txt).
# `start` on a cluster that is already up only prints its environment. Ports: $LETHE_SLURM_PORT
# (default 6817) for slurmctld and the next one for slurmd.
#
# Reference: Slurm's slurm.conf(5) and Quick Start Administrator Guide; munged(8).
set -euo pipefail

DIR=${LETHE_SLURM_DIR:-/tmp/lethe-slurm}
PORT=${LETHE_SLURM_PORT:-6817}
CONF=$DIR/slurm.conf
NODE=$(hostname -s)
export SLURM_CONF=$CONF

say() { echo "slurm-local: $*" >&2; }

# The daemons run as root (SlurmUser=root), and apt-get needs it: start and stop run as root.
if [ "$(id -u)" != 0 ] && [ "${1:-}" != status ]; then
  exec sudo -n LETHE_SLURM_DIR="$DIR" LETHE_SLURM_PORT="$PORT" bash "$0" "$@"
fi

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null &&
    command -v sbatch >/dev/null && return 0
  say "installing slurm-wlm and munge with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null ||
    { apt-get update -q >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null; }
}

# The node is up when sinfo can reach slurmctld and lists the node idle, mixed or allocated.
node_up() {
  [ -f "$CONF" ] || return 1
  local state
  state=$(timeout 5 sinfo --noheader --nodes="$NODE" --format=%T 2>/dev/null | head -1) || return 1
  case "$state" in idle* | mix* | alloc* | completing*) return 0 ;; *) return 1 ;; esac
}

pid_of() { [ -f "$DIR/run/$1.pid" ] && cat "$DIR/run/$1.pid" || true; }

stop() {
  for d in slurmd slurmctld munged; do
    local pid
    pid=$(pid_of "$d")
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for d in slurmd slurmctld munged; do
    local pid
    pid=$(pid_of "$d")
    [ -n "$pid" ] || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  # Only what start made: $LETHE_SLURM_DIR may name a folder that holds other things too.
  rm -rf "$DIR"/{munge,state,spool,log,run} "$DIR/slurm.conf" "$DIR/env"
  rmdir "$DIR" 2>/dev/null || true
  say "stopped; removed its files from $DIR"
}

start() {
  if node_up; then
    say "already up ($CONF)"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  install_packages
  [ -d "$DIR" ] && stop >/dev/null 2>&1 || true
  mkdir -p "$DIR"/{munge,state,spool,log,run}
  chmod 700 "$DIR/munge"
  local cpus mem
  cpus=$(nproc --all)
  mem=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)

  # munge: a fresh 1 KiB key readable by its owner only; its own socket, so a system munged is untouched.
  head -c 1024 /dev/urandom >"$DIR/munge/munge.key"
  chmod 400 "$DIR/munge/munge.key"
  munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munged.seed"

  cat >"$CONF" <<EOF
# Written by lethe's scripts/slurm-local.sh: a one-node test cluster in $DIR.
ClusterName=lethe-local
SlurmctldHost=$NODE
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
# Jobs start within a second or two once they may (tests; Slurm's defaults are 60 s and 30 s).
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$NODE CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  echo "export SLURM_CONF=$CONF" >"$DIR/env"

  slurmctld -c -f "$CONF"
  slurmd -f "$CONF"
  for _ in $(seq 100); do
    if node_up; then
      say "up: node $NODE, $cpus CPUs, ${mem} MB, partition debug ($CONF)"
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 0.2
  done
  say "the node did not come up within 20 s; logs in $DIR/log:"
  tail -n 20 "$DIR"/log/*.log >&2 || true
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    node_up || { say "not running ($CONF)"; exit 1; }
    sinfo
    ;;
  *)
    echo "usage: $0 start|stop|status   (folder: \$LETHE_SLURM_DIR, default /tmp/lethe-slurm)" >&2
    exit 2
    ;;
esac
