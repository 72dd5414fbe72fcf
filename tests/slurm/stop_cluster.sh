#!/usr/bin/env bash
# Stop the daemons tests/slurm/start_cluster.sh started, by the process ids it recorded
# (never by name: other SLURM or munge daemons on the machine are left alone).
set -uo pipefail

STATE=${1:-/tmp/lesion-transfer-slurm}
for daemon in slurmd slurmctld munged; do
    pid_file=$STATE/$daemon.pid
    [[ -f $pid_file ]] || continue
    pid=$(cat "$pid_file")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
        echo "stopped $daemon ($pid)"
    fi
    rm -f "$pid_file"
done
