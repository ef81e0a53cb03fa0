#!/usr/bin/env bash
# shoal's benchmarks on the release build: one line per figure, `bench NAME key=value ...`, raw libzmq
# measured in the same run by `shoal bench baseline`. A real coordinator and real `shoal agent bench`
# processes (no-op steps) on loopback with CURVE; throwaway keys in a temporary directory.
# Scale down with the variables below (e.g. PIPELINED_STEPS=2000 IDLE_COUNTS="100 500" MEMORY_WORKFLOWS=1000).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/shoal}
CHAIN_STEPS=${CHAIN_STEPS:-1000}
PIPELINED_STEPS=${PIPELINED_STEPS:-20000}
PIPELINED_AGENTS=${PIPELINED_AGENTS:-8}
FLAT_SMALL=${FLAT_SMALL:-200}
FLAT_LARGE=${FLAT_LARGE:-2000}
IDLE_COUNTS=${IDLE_COUNTS:-"1000 5000"}
IDLE_SECONDS=${IDLE_SECONDS:-10}
DEMO_RUNS=${DEMO_RUNS:-5}
MEMORY_WORKFLOWS=${MEMORY_WORKFLOWS:-10000}

work=$(mktemp -d /tmp/shoal-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# Two connections per idle agent, on both sides: up to 20,000 files per process.
ulimit -n "$(ulimit -Hn | awk '{print ($1 == "unlimited" || $1 > 20000) ? 20000 : $1}')"

field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }
calc() { awk "BEGIN {printf \"%.3f\", $1}"; }
# CPU seconds of every thread of a process, in nanoseconds from the scheduler.
cpu() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.6f", s / 1e9}'; }
rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# The private part of the RSS: what mapped files (the binary, shared libraries) do not account for.
anon_mib() { awk '/^RssAnon:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

keys="$work/keys"
for name in coordinator agent client; do "$BIN" keys generate "$name" --dir "$keys" >/dev/null; done
for name in agent client; do "$BIN" keys allow "$keys/$name.pub" --allow "$keys/allow" >/dev/null; done
agent_keys=(--key "$keys/agent.key" --coordinator-key "$keys/coordinator.pub")
client_keys=(--key "$keys/client.key" --coordinator-key "$keys/coordinator.pub")

# Starts a coordinator on a journal of its own; sets $coordinator_pid, $control and $events.
start_coordinator() {
    "$BIN" coordinator --control 'tcp://127.0.0.1:*' --events 'tcp://127.0.0.1:*' --journal "$work/$1.sqlite" \
        --dir "$work/out-$1" --key "$keys/coordinator.key" --allow "$keys/allow" --log-level error \
        > "$work/$1.ready" 2> "$work/$1.log" &
    coordinator_pid=$!
    pids+=("$coordinator_pid")
    for _ in $(seq 200); do grep -q '^ready ' "$work/$1.ready" 2>/dev/null && break; sleep 0.05; done
    control=$(sed -n 's/^ready control=\([^ ]*\) .*/\1/p' "$work/$1.ready")
    events=$(sed -n 's/^ready .*events=\([^ ]*\).*/\1/p' "$work/$1.ready")
}

start_agents() {
    for i in $(seq "$1"); do
        "$BIN" agent bench --coordinator "$control" --id "bench-$i" --capacity 16 --work-dir "$work/agents" \
            "${agent_keys[@]}" --log-level error &
        pids+=($!)
    done
    # Ready when the coordinator lists them all.
    for _ in $(seq 200); do
        [ "$("$BIN" agents --coordinator "$control" "${client_keys[@]}" | grep -c '^bench-')" -ge "$1" ] && break
        sleep 0.1
    done
}

run() { "$BIN" bench run --coordinator "$control" --events "$events" --coordinator-pid "$coordinator_pid" "${client_keys[@]}" "$@"; }

echo "# shoal benchmarks $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo |
    cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo);" \
    "$(. /etc/os-release && echo "$PRETTY_NAME"); $($BIN version); load $(cut -d' ' -f1-3 /proc/loadavg)"

baseline=$("$BIN" bench baseline)
echo "$baseline"
round_trips=$(field roundtrips_per_s "$baseline")
pipelined_raw=$(field pipelined_msgs_per_s "$baseline")

start_coordinator main
start_agents "$PIPELINED_AGENTS"
worked_agent=${pids[1]}  # bench-1, which runs its share of every run below

chain=$(run --shape chain --steps "$CHAIN_STEPS")
echo "bench chain steps=$CHAIN_STEPS steps_per_s=$(field steps_per_s "$chain") p50_ms=$(field p50_ms "$chain")" \
    "p99_ms=$(field p99_ms "$chain") first50_ms=$(field first50_ms "$chain") last50_ms=$(field last50_ms "$chain")" \
    "ratio=$(calc "$(field steps_per_s "$chain") / $round_trips") state=$(field state "$chain")"

pipelined=$(run --shape independent --steps "$PIPELINED_STEPS")
echo "bench pipelined steps=$PIPELINED_STEPS agents=$PIPELINED_AGENTS steps_per_s=$(field steps_per_s "$pipelined")" \
    "ratio=$(calc "$(field steps_per_s "$pipelined") / ($pipelined_raw / 4)") state=$(field state "$pipelined")"

small=$(run --shape independent --steps "$FLAT_SMALL")
large=$(run --shape independent --steps "$FLAT_LARGE")
small_cpu=$(calc "$(field coordinator_cpu_s "$small") * 1000000 / $FLAT_SMALL")
large_cpu=$(calc "$(field coordinator_cpu_s "$large") * 1000000 / $FLAT_LARGE")
echo "bench flat cpu_us_per_step_${FLAT_SMALL}=$small_cpu cpu_us_per_step_${FLAT_LARGE}=$large_cpu" \
    "flat=$(awk -v a="$large_cpu" -v b="$small_cpu" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"

quiet=$(run --shape chain --steps 100)
idle_line="bench idle chain100_p99_ms_0=$(field p99_ms "$quiet")"
for count in $IDLE_COUNTS; do
    # Each libzmq socket holds a connection and a mailbox: 4 files per agent, so at most 2,400 agents per process
    # under the 20,000-file limit.
    processes=$(( (count + 2399) / 2400 ))
    idle_pids=()
    for p in $(seq "$processes"); do
        "$BIN" bench idle-agents --coordinator "$control" --events "$events" --count $(( count / processes )) \
            "${agent_keys[@]}" > "$work/idle-$count-$p.out" 2> "$work/idle-$count-$p.log" &
        idle_pids+=($!)
        pids+=($!)
    done
    for _ in $(seq 1800); do
        [ "$(cat "$work"/idle-"$count"-*.out 2>/dev/null | grep -c '^ready')" -ge "$processes" ] && break
        sleep 0.1
    done
    [ "$(cat "$work"/idle-"$count"-*.out | grep -c '^ready')" -ge "$processes" ] ||
        echo "# idle-agents $count: not all welcomed within 180 s"
    sleep 2  # subscriptions and first heartbeats settle
    connected=$("$BIN" stats --coordinator "$control" "${client_keys[@]}" | awk '/^agents/ {print $2}')
    before=$(cpu "$coordinator_pid")
    sleep "$IDLE_SECONDS"
    after=$(cpu "$coordinator_pid")
    busy=$(calc "($after - $before) / $IDLE_SECONDS * 100")
    loaded=$(run --shape chain --steps 100)
    idle_line+=" agents_$count=$connected cpu_pct_$count=$busy chain100_p99_ms_$count=$(field p99_ms "$loaded")"
    for p in "${idle_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    sleep 3  # their byes (SIGTERM) reach the coordinator, which forgets them
done
echo "$idle_line"

demo_times=()
for i in $(seq "$DEMO_RUNS"); do
    start=$(date +%s.%N)
    "$BIN" create -n 1 -d "$work/demo-$i" >/dev/null
    demo_times+=("$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN {print a - b}')")
done
echo "bench demo runs=$DEMO_RUNS $(printf '%s\n' "${demo_times[@]}" | sort -n |
    awk '{a[NR]=$1} END {printf "median_s=%.2f min_s=%.2f max_s=%.2f", a[int((NR+1)/2)], a[1], a[NR]}')"

main_rss=$(rss_mib "$coordinator_pid")  # after everything above, 5,000 idle agents included
# Idle agents: `shoal agent` becomes the lean `shoal-agent` (same pid); a validation agent's step worker starts with
# its first step, so an idle one has none. The same agent with its handlers in one process, for comparison.
"$BIN" agent bench --coordinator "$control" --id bench-idle --work-dir "$work/agents" "${agent_keys[@]}" \
    --log-level error &
idle_agent=$!
"$BIN" agent validation --coordinator "$control" --id validation-idle --work-dir "$work/agents" "${agent_keys[@]}" \
    --log-level error &
idle_validation=$!
"$BIN" agent validation --in-process --coordinator "$control" --id validation-in-process --work-dir "$work/agents" \
    "${agent_keys[@]}" --log-level error &
idle_in_process=$!
pids+=("$idle_agent" "$idle_validation" "$idle_in_process")
for _ in $(seq 100); do
    [ "$("$BIN" agents --coordinator "$control" "${client_keys[@]}" | grep -c -E '^(bench-idle|validation-)')" -ge 3 ] &&
        break
    sleep 0.1
done
sleep 2  # settled: past the first heartbeats
agent_rss=$(rss_mib "$idle_agent")
agent_anon=$(anon_mib "$idle_agent")
validation_rss=$(rss_mib "$idle_validation")
in_process_rss=$(rss_mib "$idle_in_process")
worked_rss=$(rss_mib "$worked_agent")
start_coordinator memory
start_agents 2
many=$(run --workflows "$MEMORY_WORKFLOWS")
echo "bench memory idle_agent_rss_mib=$agent_rss idle_agent_anon_mib=$agent_anon" \
    "idle_validation_agent_rss_mib=$validation_rss idle_in_process_agent_rss_mib=$in_process_rss" \
    "agent_rss_mib_after_the_runs_above=$worked_rss" \
    "coordinator_rss_mib_after_${MEMORY_WORKFLOWS}_workflows=$(field coordinator_rss_mib "$many")" \
    "workflows_per_s=$(field workflows_per_s "$many") coordinator_rss_mib_after_the_runs_above=$main_rss"
