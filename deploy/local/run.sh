#!/usr/bin/env bash
# `make run`: the whole pipeline on one machine.
#   Kafka + Elasticsearch (deploy/local/services.sh) -> `earshot run` (the worker, the spike watcher
#   and the API under one supervisor: a crashed process restarts with backoff) -> `earshot demo`:
#   a week of history from the demo corpus (38k real tweets) on a past timeline with a daily and
#   weekly rhythm, a crisis for United (an alert on the dashboard within minutes), then the rest of
#   the corpus live at EARSHOT_DEMO_RATE mentions/s.
# Ctrl-C stops everything this script started (services already running before are left up).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
BIN=$REPO/.venv/bin
export EARSHOT_HOME=${EARSHOT_HOME:-$REPO/.earshot}
LOGS=$EARSHOT_HOME/logs
mkdir -p "$LOGS"
API_PORT=${EARSHOT_API_PORT:-8000}
RATE=${EARSHOT_DEMO_RATE:-100}
LIMIT=${EARSHOT_DEMO_LIMIT:-}

say() { printf '\033[1m[earshot]\033[0m %s\n' "$*"; }

started_services=0
if ! bash deploy/local/services.sh status >/dev/null 2>&1; then
  started_services=1
fi
SUPERVISOR=""
cleanup() {
  trap - INT TERM EXIT
  say "stopping..."
  if [[ -n $SUPERVISOR ]]; then
    # The supervisor stops its children (SIGTERM, SIGKILL after 30 s) and returns when all are gone.
    kill -TERM "$SUPERVISOR" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$SUPERVISOR" 2>/dev/null || break; sleep 1; done
    kill -KILL "$SUPERVISOR" 2>/dev/null || true
  fi
  if [[ $started_services == 1 ]]; then bash deploy/local/services.sh down; fi
  say "stopped"
}
trap cleanup INT TERM EXIT

say "starting Kafka and Elasticsearch (first run downloads them from Maven Central)"
bash deploy/local/services.sh up

"$BIN/earshot" setup
# The API needs a key: a demo admin key, new each run (the previous demo key is revoked), kept owner-only.
KEY_FILE=$EARSHOT_HOME/demo-admin-key
(umask 077 && "$BIN/earshot" keys create --role admin --name demo --replace >"$KEY_FILE")
KEY=$(cat "$KEY_FILE")
say "starting the worker, the spike watcher and the API on http://127.0.0.1:$API_PORT under 'earshot run' (log: $LOGS/run.log)"
: >"$LOGS/worker.log"; : >"$LOGS/spikes.log"; : >"$LOGS/api.log"
"$BIN/earshot" run --api-port "$API_PORT" --logs "$LOGS" >>"$LOGS/run.log" 2>&1 &
SUPERVISOR=$!

for _ in $(seq 1 120); do
  if grep -q "Ready" "$LOGS/worker.log" 2>/dev/null && grep -q "Ready" "$LOGS/spikes.log" 2>/dev/null && curl -fs "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1; then
    break
  fi
  kill -0 "$SUPERVISOR" 2>/dev/null || { say "the supervisor gave up; see $LOGS/run.log"; tail -n 40 "$LOGS/run.log"; exit 1; }
  sleep 1
done

cat <<EOF

  earshot is running.
    dashboard       http://127.0.0.1:$API_PORT/?range=1h#key=$KEY   (the key is in the fragment: never sent to the server)
    API docs        http://127.0.0.1:$API_PORT/docs   ("Authorize" with the key below)
    demo admin key  $KEY
                    (also in $KEY_FILE; more keys: .venv/bin/earshot keys create --role comms --name you)
    search          curl -H "Authorization: Bearer $KEY" 'http://127.0.0.1:$API_PORT/v1/mentions/search?q=delayed&brand=united&sentiment=negative'
    trend           curl -H "Authorization: Bearer $KEY" 'http://127.0.0.1:$API_PORT/v1/brands/united/trend?interval=1m'
    readiness       curl http://127.0.0.1:$API_PORT/readyz
    spike alerts    curl -N -H "Authorization: Bearer $KEY" http://127.0.0.1:$API_PORT/v1/alerts/stream
    logs            $LOGS/worker.log  $LOGS/spikes.log  $LOGS/api.log  $LOGS/run.log (restarts)
  The demo: a week of history, then a crisis for United (its alert reaches the dashboard within a
  few minutes), then the corpus live at $RATE mentions/s. Ctrl-C stops everything.

EOF

demo_args=(--rate "$RATE")
[[ -n $LIMIT ]] && demo_args+=(--limit "$LIMIT")
"$BIN/earshot" demo "${demo_args[@]}"
say "replay finished; the worker, the spike watcher and the API keep running. Ctrl-C to stop."
wait "$SUPERVISOR"
