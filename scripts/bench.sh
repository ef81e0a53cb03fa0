#!/usr/bin/env bash
# shoal's benchmarks (release build). Prints figures for docs/benchmarks.md.
#   1. one embedded demo workflow, end to end (processes started and stopped)
#   2. workflow throughput of one coordinator with a fixed set of agents
#   3. the coordinator's resident memory after that load
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/shoal
RUNS=${RUNS:-5}
WORKFLOWS=${WORKFLOWS:-50}
work=$(mktemp -d /tmp/shoal-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

now() { date +%s.%N; }

echo "# shoal benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $($BIN version)"
echo
echo "## 1. embedded demo workflow (shoal create -n 1), $RUNS runs"
times=()
for i in $(seq "$RUNS"); do
    start=$(now)
    "$BIN" create -n 1 -o "$work/demo-$i" >/dev/null
    times+=("$(awk -v a="$(now)" -v b="$start" 'BEGIN {print a - b}')")
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1; s+=$1} END {printf "min %.2fs  median %.2fs  max %.2fs  mean %.2fs\n", a[1], a[int((NR+1)/2)], a[NR], s/NR}'

echo
echo "## 2. throughput: $WORKFLOWS workflows (15 steps each) through one coordinator (CURVE), 1 agent per role + 4 validation agents"
keys="$work/keys"
for name in coordinator agent client; do "$BIN" keys generate "$name" --dir "$keys" >/dev/null; done
for name in agent client; do "$BIN" keys allow "$keys/$name.pub" --allow "$keys/allow" >/dev/null; done
agent_keys=(--key "$keys/agent.key" --coordinator-key "$keys/coordinator.pub")
client_keys=(--key "$keys/client.key" --coordinator-key "$keys/coordinator.pub")
"$BIN" coordinator --control tcp://127.0.0.1:* --events tcp://127.0.0.1:* --journal "$work/journal.sqlite" \
    --output "$work/out" --key "$keys/coordinator.key" --allow "$keys/allow" --log-level error > "$work/ready" &
pids+=($!)
for _ in $(seq 100); do grep -q '^ready ' "$work/ready" 2>/dev/null && break; sleep 0.1; done
control=$(sed -n 's/^ready control=\([^ ]*\) .*/\1/p' "$work/ready")
for role in planner infra argocd monitoring docs; do
    "$BIN" agent "$role" --coordinator "$control" --id "$role-1" --capacity 8 --work-dir "$work/out" "${agent_keys[@]}" \
        --log-level error &
    pids+=($!)
done
for i in 1 2 3 4; do
    "$BIN" agent validation --coordinator "$control" --id "validation-$i" --capacity 8 --work-dir "$work/out" \
        "${agent_keys[@]}" --log-level error &
    pids+=($!)
done
sleep 1
start=$(now)
ids=()
for i in $(seq "$WORKFLOWS"); do ids+=("$("$BIN" create -n 1 --coordinator "$control" "${client_keys[@]}" --detach | tail -n 1)"); done
failed=0
for id in "${ids[@]}"; do "$BIN" wait "$id" --coordinator "$control" "${client_keys[@]}" >/dev/null || failed=$((failed + 1)); done
elapsed=$(awk -v a="$(now)" -v b="$start" 'BEGIN {print a - b}')
awk -v n="$WORKFLOWS" -v t="$elapsed" -v f="$failed" \
    'BEGIN {printf "%d workflows in %.1fs (%d failed): %.1f workflows/s, %.0f steps/s\n", n, t, f, n / t, n * 15 / t}'

echo
echo "## 3. coordinator after the load"
"$BIN" stats --coordinator "$control" "${client_keys[@]}"
