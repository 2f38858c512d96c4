#!/usr/bin/env bash
# tests/slurm/local_cluster.sh start DIR | stop DIR — a real one-node Slurm
# cluster on this machine for the tests of jobs/*.sbatch: munged (Debian's
# munge, on its usual socket), slurmctld and slurmd (Debian's slurm-wlm)
# with their configuration, state, spool, logs and pid files under DIR, on
# free ports, so nothing in /etc/slurm is touched and two clusters never
# meet. After `start`, `export SLURM_CONF=DIR/slurm.conf` points sbatch,
# squeue, scontrol and srun at it. Runs as root (slurmd must).
# Knobs: CPUS (the node's CPUs, default: nproc; jobs may ask for more tasks
# than that with --overcommit).
set -euo pipefail
cmd=${1:?usage: local_cluster.sh start|stop DIR}
DIR=$(mkdir -p "${2:?usage: local_cluster.sh start|stop DIR}" && cd "$2" && pwd)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_munge() {
    # the key comes with the package; a fresh machine may still lack it
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    if ! munge -n > /dev/null 2>&1; then
        runuser -u munge -- munged
        for _ in $(seq 50); do munge -n > /dev/null 2>&1 && break; sleep 0.1; done
    fi
    munge -n | unmunge > /dev/null || { echo "munged does not answer" >&2; exit 1; }
}

case "$cmd" in
start)
    start_munge
    host=$(hostname -s)
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    cat > "$DIR/slurm.conf" <<CONF
# written by tests/slurm/local_cluster.sh
ClusterName=llmpitest
SlurmctldHost=$host
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
# a requeued job waits cred_expire + 1 s before it runs again, so that the
# old run's step credentials have expired (its new steps reuse their ids);
# Slurm's 120 s is long for a test, 10 s still covers a local launch
AuthInfo=cred_expire=10
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ReturnToService=2
MpiDefault=none
JobRequeue=1
SchedulerParameters=defer_batch=0
MinJobAge=600
KillWait=5
NodeName=$host CPUs=${CPUS:-$(nproc)} State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
    export SLURM_CONF=$DIR/slurm.conf
    slurmctld -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF"
    for _ in $(seq 100); do
        if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
            echo "slurm: up ($SLURM_CONF)"
            exit 0
        fi
        sleep 0.2
    done
    echo "slurm did not come up; logs:" >&2
    tail -n 30 "$DIR"/log/*.log >&2 || true
    exit 1
    ;;
stop)
    for d in slurmd slurmctld; do
        [ -f "$DIR/$d.pid" ] && kill "$(cat "$DIR/$d.pid")" 2>/dev/null || true
    done
    for _ in $(seq 50); do
        alive=0
        for d in slurmd slurmctld; do
            [ -f "$DIR/$d.pid" ] && kill -0 "$(cat "$DIR/$d.pid")" 2>/dev/null && alive=1
        done
        [ $alive -eq 0 ] && break
        sleep 0.1
    done
    ;;
*)
    echo "usage: local_cluster.sh start|stop DIR" >&2
    exit 2
    ;;
esac
