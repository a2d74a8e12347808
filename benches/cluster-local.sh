#!/usr/bin/env bash
# Times the local driver's release operations on this host: deploy of the seed's HA cluster
# (8 pods) to ready, an all-in upgrade (every pod replaced one at a time, workers draining),
# a forced rollback (every pod at once) and a rolling rollback; then the supervisor's memory.
# Needs PostgreSQL (OCLAW_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test).
# Usage: benches/cluster-local.sh [path/to/oclaw]   (default: target/release/oclaw)
set -euo pipefail
oclaw=$(realpath "${1:-target/release/oclaw}")
db=${OCLAW_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
work=$(mktemp -d)
export OCLAW_HOME="$work/home"
trap '"$oclaw" teardown >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir -p "$work/config"
cd "$work"
cat > config/production.yaml <<YAML
apiVersion: v1
kind: OpenClawCluster
metadata:
  name: bench-cluster
spec:
  replica: 3
  resources:
    requests: {cpu: "2000m", memory: "4Gi"}
    limits: {cpu: "4000m", memory: "8Gi"}
  storage: {class: "ssd-provisioner", size: "100Gi", url: "$db"}
  network: {serviceType: "LoadBalancer", port: 18480}
  monitoring: {enabled: true, prometheusEndpoint: "http://prometheus-server:9090"}
YAML
sed 's/^spec:/spec:\n  version: "0.2.0"/' config/production.yaml > config/v2.yaml
seconds() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}
"$oclaw" init --config config/production.yaml >/dev/null
printf 'deploy core --wait (8 pods to ready)       %6.2f s\n' "$(seconds "$oclaw" deploy core --wait)"
printf 'upgrade all-in (8 pods, one at a time)     %6.2f s\n' "$(seconds "$oclaw" upgrade --rollout-strategy all-in --confirm --config config/v2.yaml)"
printf 'rollback --revision 1 --force (all at once) %5.2f s\n' "$(seconds "$oclaw" rollback --revision 1 --force)"
printf 'rollback --revision 2 (one at a time)      %6.2f s\n' "$(seconds "$oclaw" rollback --revision 2)"
pid=$(cat "$OCLAW_HOME/clusters/oclaw-system/supervisor.pid")
printf 'supervisor resident memory                 %6.1f MB\n' "$(awk '/VmRSS/ {print $2/1024}' /proc/"$pid"/status)"
