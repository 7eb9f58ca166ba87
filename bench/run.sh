#!/usr/bin/env bash
# Builds the broker and the benchmark in release mode, then runs the
# benchmark against a freshly started broker (one per scenario).
#
#   bench/run.sh                      # all ten scenarios over TCP
#   bench/run.sh --transport both     # ... over TCP and WebSocket
#   bench/run.sh --quick              # smoke run (CI)
#   bench/run.sh latency --json       # one scenario, JSON on stdout
#   bench/run.sh chat-history chat-resume chat-fanout   # the chat scenarios
#   bench/run.sh cluster              # the cluster scenarios: starts Tansu
#                                     # and three nodes bridged through it
#   bench/run.sh cluster --quick      # ... smoke sizes, a few seconds (CI)
#
# Every argument goes to stompede-bench (see --help). CARGO_TARGET_DIR is
# honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p stompede -p stompede-bench
# 10,000 idle connections need more than the usual 1024 descriptors, on
# both sides; stompede-bench also raises its soft limit to the hard limit
# itself, and the broker it starts inherits it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# "cluster" stands for the three cluster scenarios.
args=()
for a in "$@"; do
    if [[ "$a" == cluster ]]; then
        args+=(cluster-1to1 cluster-fanout cluster-latency)
    else
        args+=("$a")
    fi
done
set -- ${args[@]+"${args[@]}"}
exec "$target/release/stompede-bench" --start-broker "$target/release/stompede" "$@"
