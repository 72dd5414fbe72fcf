#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, to try profiles/slurm without a cluster:
# partitions `cpu` (default) and `gpu`, the node offering 2 GPUs (fake character devices,
# so jobs get CUDA_VISIBLE_DEVICES but run on the CPU). Debian or Ubuntu, as root:
#
#   apt-get install -y slurm-wlm munge
#   tests/slurm/start_cluster.sh [STATE_DIR]      # prints the daemons' process ids
#   ...                                           # sinfo, sbatch, snakemake --profile ...
#   tests/slurm/stop_cluster.sh [STATE_DIR]
#
# STATE_DIR (default /tmp/lesion-transfer-slurm) holds the daemons' state, logs and pids.
# It writes /etc/slurm/slurm.conf and gres.conf, the places every SLURM command reads, and
# refuses to replace a slurm.conf it did not write. No accounting database (no slurmdbd):
# `sacct` has nothing, status comes from `squeue` (the profile says how).
set -euo pipefail

STATE=${1:-/tmp/lesion-transfer-slurm}
CONF_DIR=/etc/slurm
MARKER="# written by lesion-transfer tests/slurm/start_cluster.sh"

fail() { echo "start_cluster.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || fail "run as root (the daemons run as root on this test cluster)"
for command in munged slurmctld slurmd sinfo mknod; do
    command -v "$command" >/dev/null || fail "$command not found: apt-get install -y slurm-wlm munge"
done
if [[ -f $CONF_DIR/slurm.conf ]] && ! grep -qF "$MARKER" "$CONF_DIR/slurm.conf"; then
    fail "$CONF_DIR/slurm.conf exists and was not written by this script: not replacing it"
fi

mkdir -p "$STATE"/{ctld,spool} "$CONF_DIR"
host=$(hostname -s)
cpus=$(nproc)
# below the machine's memory, or slurmd refuses the node
memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))

# GPUs without GPUs: gres files must be character devices, or slurmd drops them and jobs get
# no CUDA_VISIBLE_DEVICES (../shared/SLURM-FACTS.md)
for i in 0 1; do
    [[ -c /dev/fakegpu$i ]] || mknod /dev/fakegpu$i c 195 $i
done

cat > "$CONF_DIR/slurm.conf" <<EOF
$MARKER
ClusterName=lesiontransfer
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
MinJobAge=3600
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$memory_mb Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
cat > "$CONF_DIR/gres.conf" <<EOF
$MARKER
NodeName=$host Name=gpu File=/dev/fakegpu[0-1]
EOF

if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true

# start order: munge, controller, node daemon
if ! pgrep -x munged >/dev/null; then
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    else
        munged --force --pid-file=/run/munge/munged.pid
    fi
    cp /run/munge/munged.pid "$STATE/munged.pid"
fi
slurmctld -f "$CONF_DIR/slurm.conf"
slurmd -f "$CONF_DIR/slurm.conf"

for _ in $(seq 60); do
    if sinfo -h -o "%T" 2>/dev/null | grep -qx idle; then
        for daemon in munged slurmctld slurmd; do
            [[ -f $STATE/$daemon.pid ]] && echo "$daemon $(cat "$STATE/$daemon.pid")"
        done
        sinfo
        exit 0
    fi
    sleep 1
done
echo "start_cluster.sh: the node did not come up idle in 60 s; its logs:" >&2
tail -n 20 "$STATE/slurmctld.log" "$STATE/slurmd.log" >&2 || true
sinfo -R >&2 || true
exit 1
