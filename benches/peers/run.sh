#!/usr/bin/env bash
# oclaw beside its peers, by one method, in one run: pre-load N no-op jobs with no worker
# running, start the workers, and time the first job's start to the last job's finish.
#
#   benches/peers/run.sh                 # N = 50,000, one round
#   TASKS=200000 ROUNDS=3 benches/peers/run.sh
#
# Needs Node.js and npm (graphile-worker and BullMQ are installed here from the pinned
# package-lock.json on first use, never committed), PostgreSQL ($OCLAW_TEST_PG) and Redis
# ($OCLAW_TEST_REDIS). Uses target/release/oclaw (built if absent; $OCLAW names another).
# Each peer runs with the settings its own documentation gives for throughput; see
# docs/benchmarks.md ("Peers").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
TASKS=${TASKS:-50000}
ROUNDS=${ROUNDS:-1}
export OCLAW_TEST_PG=${OCLAW_TEST_PG:-postgres://postgres@127.0.0.1:5432/test}
export OCLAW_TEST_REDIS=${OCLAW_TEST_REDIS:-redis://127.0.0.1:6379}
OCLAW=${OCLAW:-$root/target/release/oclaw}

command -v node >/dev/null || { echo "run.sh: Node.js is needed for the peers (apt-get install -y nodejs npm)" >&2; exit 1; }
if [ ! -x "$OCLAW" ]; then
  echo "building $OCLAW (cargo build --release -p oclaw) ..." >&2
  (cd "$root" && cargo build --release -p oclaw)
fi
if [ ! -d "$here/node_modules/graphile-worker" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  echo "installing the peers from package-lock.json (npm ci) ..." >&2
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The rate a command printed: `= 12345 tasks/s` (oclaw) or `= 12345 rows/s` (bare); the
# peers print `name<TAB>rate<TAB>...`.
rate_of() { grep -oE '= [0-9]+ (tasks|rows)/s' | head -1 | grep -oE '[0-9]+'; }

declare -A best
order=()
measure() { # label, command...
  local label=$1
  shift
  local out r err
  err=$(mktemp)
  if ! out=$("$@" 2>"$err"); then
    cat "$err" >&2
    echo "run.sh: '$label' failed" >&2
    exit 1
  fi
  rm -f "$err"
  echo "$out" >&2
  if [ "$1" = node ]; then r=$(echo "$out" | cut -f2); else r=$(echo "$out" | rate_of); fi
  [ -n "$r" ] || { echo "run.sh: '$label' printed no rate" >&2; exit 1; }
  if [ -z "${best[$label]:-}" ]; then order+=("$label"); fi
  if [ "${best[$label]:-0}" -lt "$r" ]; then best[$label]=$r; fi
}

peers="node $here/peers.mjs"
for round in $(seq 1 "$ROUNDS"); do
  echo "# round $round of $ROUNDS, $TASKS tasks each" >&2
  measure "bare SQLite queue" "$OCLAW" bench bare --tasks "$TASKS"
  measure "oclaw, SQLite (bench drain, concurrency 10)" "$OCLAW" bench drain --tasks "$TASKS"
  measure "bare PostgreSQL queue (2 connections)" "$OCLAW" bench bare --storage-url "$OCLAW_TEST_PG" --tasks "$TASKS"
  measure "oclaw, PostgreSQL, 1 worker process x 50" "$OCLAW" bench drain --storage-url "$OCLAW_TEST_PG" --tasks "$TASKS" --workers 1 --concurrency 50
  measure "oclaw, PostgreSQL, 2 worker processes x 50" "$OCLAW" bench drain --storage-url "$OCLAW_TEST_PG" --tasks "$TASKS" --workers 2 --concurrency 50
  measure "graphile-worker, 1 process x 24" $peers graphile --tasks "$TASKS" --processes 1 --concurrency 24
  measure "graphile-worker, 2 processes x 24" $peers graphile --tasks "$TASKS" --processes 2 --concurrency 24
  measure "graphile-worker, 2 processes x 10" $peers graphile --tasks "$TASKS" --processes 2 --concurrency 10
  measure "BullMQ (Redis), 1 process x 24" $peers bullmq --tasks "$TASKS" --processes 1 --concurrency 24
  measure "BullMQ (Redis), 2 processes x 24" $peers bullmq --tasks "$TASKS" --processes 2 --concurrency 24
done

max_of() { # prefix → the best rate among labels starting with it
  local m=0
  for l in "${order[@]}"; do [[ $l == "$1"* ]] && [ "${best[$l]}" -gt "$m" ] && m=${best[$l]}; done
  echo "$m"
}
gw=$(max_of "graphile-worker")
oc_pg=$(max_of "oclaw, PostgreSQL")
bare_pg=$(max_of "bare PostgreSQL")
oc_sq=$(max_of "oclaw, SQLite")
bare_sq=$(max_of "bare SQLite")
bull=$(max_of "BullMQ")

echo
echo "| $TASKS no-op tasks, best of $ROUNDS | tasks/s |"
echo "|---|---|"
for l in "${order[@]}"; do echo "| $l | ${best[$l]} |"; done
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo "| ratio | value |"
echo "|---|---|"
echo "| oclaw PostgreSQL (best) / graphile-worker (best) | $(ratio "$oc_pg" "$gw")× |"
echo "| oclaw PostgreSQL (best) / BullMQ (best) | $(ratio "$oc_pg" "$bull")× |"
echo "| oclaw PostgreSQL / bare PostgreSQL queue | $(ratio "$oc_pg" "$bare_pg") |"
echo "| oclaw SQLite / bare SQLite queue | $(ratio "$oc_sq" "$bare_sq") |"
