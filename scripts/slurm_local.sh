#!/usr/bin/env bash
# slurm_local.sh -- a real single-node SLURM cluster on this machine, to try `hydra/launcher=slurm` without
# a cluster (and for CI). Debian/Ubuntu, as root, no systemd: munged, MariaDB, slurmdbd, slurmctld and slurmd
# run in the foreground of their own sessions, all state in one folder, stopped by their recorded PIDs.
# Nothing under /etc is changed: clients find the cluster through SLURM_CONF.
#
#   scripts/slurm_local.sh install        apt-get install the daemons (slurmctld slurmd slurmdbd munge mariadb)
#   scripts/slurm_local.sh start          configure + start, wait until the node is idle; prints the export line
#   eval "$(scripts/slurm_local.sh env)"  export SLURM_CONF for sbatch/squeue and the sweep
#   scripts/slurm_local.sh status         daemons and sinfo
#   scripts/slurm_local.sh stop           cancel jobs, stop the daemons this script started (by PID)
#
# Then: python run.py -m hydra/launcher=slurm hydra.launcher.gpus_per_node=null hydra.launcher.cpus_per_task=1 \
#         hydra.launcher.mem_gb=1 layer_idx=0,1,2 sample_idx=0,1
# Knobs: ATTNVIZ_SLURM_DIR (state; default ${TMPDIR:-/tmp}/attnviz-slurm), SLURM_PORTS_BASE (default 6817:
# slurmctld, +1 slurmd, +2 slurmdbd), ATTNVIZ_SLURM_DB_PORT (MariaDB, default 13306).
set -Eeuo pipefail

DIR=${ATTNVIZ_SLURM_DIR:-${TMPDIR:-/tmp}/attnviz-slurm}
BASE=${SLURM_PORTS_BASE:-6817}
CTLD_PORT=$BASE SLURMD_PORT=$((BASE + 1)) DBD_PORT=$((BASE + 2))
DB_PORT=${ATTNVIZ_SLURM_DB_PORT:-13306}
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)  # start order; stopped in reverse
PKGS=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
SOCK=$DIR/munge/run/munge.sock
DB=$DIR/mysql

log() { echo "[slurm_local] $*" >&2; }
die() { log "error: $*"; exit 1; }
pid_of() { [[ -f $DIR/pids/$1.pid ]] && cat "$DIR/pids/$1.pid"; }
# alive NAME: its recorded PID runs and is still that program (guards against a recycled PID)
alive() { local pid; pid=$(pid_of "$1") || return 1; [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]]; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # wait_for SECONDS WHAT DAEMON CMD...: poll CMD until it succeeds; fail early if DAEMON died
  local secs=$1 what=$2 daemon=$3 deadline; shift 3
  deadline=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    [[ -n $daemon ]] && ! alive "$daemon" && die "$what: $daemon exited (see $DIR/log/)"
    (($(date +%s) >= deadline)) && die "$what: not ready after ${secs}s (see $DIR/log/)"
    sleep 0.3
  done
  log "$what ready"
}

start_daemon() {  # start_daemon NAME CMD... (CMD stays in the foreground; setsid keeps it out of our session)
  local name=$1; shift
  setsid "$@" >"$DIR/log/$name.out" 2>&1 </dev/null &
  echo $! >"$DIR/pids/$name.pid"
  sleep 0.2
  alive "$name" || die "$name did not start: $(tail -n 5 "$DIR/log/$name.out")"
  log "started $name (pid $!)"
}

cmd_install() {
  [[ $(id -u) -eq 0 ]] || die "install needs root (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  local made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then  # keep the packages' postinst from starting system services
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
  [[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d
  log "installed: $(dpkg-query -W -f='${Package}=${Version} ' "${PKGS[@]}")"
}

write_configs() {
  local host ncpu mem_mb
  host=$(hostname -s) ncpu=$(nproc) mem_mb=$(awk '/MemTotal/{printf "%d", $2/1024*0.9}' /proc/meminfo)
  cat >"$DIR/slurm.conf" <<EOF
ClusterName=attnviz
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pidfile
SlurmdPidFile=$DIR/slurmd.pidfile
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$SOCK
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  # slurmdbd reads slurmdbd.conf beside $SLURM_CONF; it must be 0600 and owned by SlurmUser
  cat >"$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$DIR/slurmdbd.pidfile
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=attnviz-local
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/slurmdbd.conf"
}

start_database() {
  mariadb-install-db --no-defaults --user=root --datadir="$DB/data" --auth-root-authentication-method=socket \
    --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed (see $DIR/log/)"
  start_daemon mariadbd mariadbd --no-defaults --user=root --datadir="$DB/data" --socket="$DB/mysqld.sock" \
    --pid-file="$DB/mysqld.pid" --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
    --innodb-buffer-pool-size=64M --log-error="$DIR/log/mariadbd.err"
  wait_for 60 mariadbd mariadbd mariadb-admin --socket="$DB/mysqld.sock" ping
  mariadb --socket="$DB/mysqld.sock" -uroot -e "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'attnviz-local';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
}

cmd_start() {
  [[ $(id -u) -eq 0 ]] || die "start needs root (the daemons run as SlurmUser=root)"
  for bin in munged mungekey mariadbd slurmdbd slurmctld slurmd sbatch; do
    command -v "$bin" >/dev/null || die "$bin not found: run '$0 install' first"
  done
  for name in "${DAEMONS[@]}"; do alive "$name" && die "$name is already running (pid $(pid_of "$name")): '$0 stop'"; done
  for port in "$CTLD_PORT" "$SLURMD_PORT" "$DBD_PORT" "$DB_PORT"; do
    port_busy "$port" && die "port $port is in use (another cluster? set SLURM_PORTS_BASE / ATTNVIZ_SLURM_DB_PORT)"
  done
  rm -rf "$DIR"
  mkdir -p "$DIR"/{state,spool,log,pids,mysql} && mkdir -p -m 700 "$DIR/munge/key" && mkdir -p -m 755 "$DIR/munge/run"
  trap 'rc=$?; if ((rc)); then log "start failed; stopping what started"; show_logs; cmd_stop; fi' EXIT
  write_configs
  export SLURM_CONF=$DIR/slurm.conf
  mungekey -c -k "$DIR/munge/key/munge.key" -b 1024
  start_daemon munged munged -F --key-file="$DIR/munge/key/munge.key" --socket="$SOCK" \
    --pid-file="$DIR/munge/run/munged.pid" --seed-file="$DIR/munge/key/munged.seed" --log-file="$DIR/log/munged.log"
  wait_for 20 munged munged bash -c "munge -S '$SOCK' -n | unmunge -S '$SOCK'"
  start_database
  start_daemon slurmdbd slurmdbd -D
  wait_for 60 slurmdbd slurmdbd port_busy "$DBD_PORT"
  start_daemon slurmctld slurmctld -D -c -f "$SLURM_CONF"
  wait_for 60 slurmctld slurmctld bash -c "scontrol ping | grep -q UP"
  start_daemon slurmd slurmd -D -f "$SLURM_CONF"
  wait_for 60 "node idle" slurmd bash -c "[[ \$(sinfo -h -o %t) == idle ]]"
  wait_for 30 "accounting" "" bash -c "sacctmgr -n -P list cluster format=cluster | grep -qx attnviz"
  trap - EXIT
  cmd_env
}

show_logs() {
  local f
  for f in "$DIR"/log/*; do [[ -f $f ]] && { echo "==== $f"; tail -n 15 "$f"; } >&2; done
}

cmd_env() { echo "export SLURM_CONF=$DIR/slurm.conf"; }

cmd_status() {
  local name rc=0
  for name in "${DAEMONS[@]}"; do
    if alive "$name"; then echo "$name: running (pid $(pid_of "$name"))"; else echo "$name: stopped"; rc=1; fi
  done
  [[ $rc -eq 0 ]] && SLURM_CONF=$DIR/slurm.conf sinfo
  return "$rc"
}

cmd_stop() {
  set +e
  export SLURM_CONF=$DIR/slurm.conf
  if alive slurmctld; then  # no slurmstepd may outlive slurmd
    squeue -h -o %A 2>/dev/null | xargs -r scancel --quiet 2>/dev/null  # every job: the cluster is ours
    for _ in $(seq 40); do [[ -z $(squeue -h 2>/dev/null) ]] && break; sleep 0.5; done
  fi
  local i name pid
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    name=${DAEMONS[$i]}
    alive "$name" || { rm -f "$DIR/pids/$name.pid"; continue; }
    pid=$(pid_of "$name")
    kill -TERM "$pid"
    for _ in $(seq 60); do alive "$name" || break; sleep 0.5; done
    if alive "$name"; then log "$name ($pid) ignored SIGTERM: SIGKILL"; kill -KILL "$pid"; fi
    rm -f "$DIR/pids/$name.pid"
    log "stopped $name (pid $pid)"
  done
  return 0
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
