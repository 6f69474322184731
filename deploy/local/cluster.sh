#!/usr/bin/env bash
# A real cluster on one machine: 3 Kafka brokers (KRaft) and 3 Elasticsearch nodes.
#
#   bash deploy/local/cluster.sh up|down|status|reset
#   bash deploy/local/cluster.sh kill-broker N|start-broker N|stop-broker N
#   bash deploy/local/cluster.sh kill-node N|start-node N|stop-node N
#
# The same Maven Central artifacts as deploy/local/services.sh (its cache; `services.sh fetch`
# fills it), the same java main classes, but a state folder and ports of its own, so the
# single-node development pair on 9092/9200 is never touched:
#
#   Kafka broker N (1..3): client 127.0.0.1:$((19190+N)), controller 127.0.0.1:$((19290+N))
#     each node is broker+controller (a 3-voter KRaft quorum, one cluster id);
#     default.replication.factor=3, min.insync.replicas=2, unclean leader election off
#   Elasticsearch node N: http 127.0.0.1:$((19200+N)), transport 127.0.0.1:$((19300+N))
#     all three master-eligible data nodes; earshot creates its indices with 1 replica
#     (EARSHOT_INDEX_REPLICAS=1), so any one node may go
#
# kill-* sends SIGKILL to the whole process session (a crash); stop-* is a clean SIGTERM stop;
# start-* starts one member again and waits until it has joined.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

EARSHOT_HOME=${EARSHOT_HOME:-$REPO_ROOT/.earshot}
EARSHOT_CACHE=${EARSHOT_CACHE:-$EARSHOT_HOME/cache}
CLUSTER_HOME=${EARSHOT_CLUSTER_HOME:-$EARSHOT_HOME/cluster}
mkdir -p "$CLUSTER_HOME" "$EARSHOT_CACHE"
CLUSTER_HOME=$(cd "$CLUSTER_HOME" && pwd)
EARSHOT_CACHE=$(cd "$EARSHOT_CACHE" && pwd)

KAFKA_VERSION=${EARSHOT_KAFKA_VERSION:-3.9.1}
ES_VERSION=${EARSHOT_ES_VERSION:-8.19.21}
KAFKA_BASE=${EARSHOT_CLUSTER_KAFKA_BASE:-19190}          # broker N listens on KAFKA_BASE+N
CONTROLLER_BASE=${EARSHOT_CLUSTER_CONTROLLER_BASE:-19290}
ES_HTTP_BASE=${EARSHOT_CLUSTER_ES_BASE:-19200}
ES_TRANSPORT_BASE=${EARSHOT_CLUSTER_TRANSPORT_BASE:-19300}
KAFKA_PARTITIONS=${EARSHOT_KAFKA_PARTITIONS:-4}
KAFKA_HEAP_OPTS=${EARSHOT_CLUSTER_KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}
ES_HEAP_OPTS=${EARSHOT_CLUSTER_ES_JAVA_OPTS:--Xms512m -Xmx512m}
ES_USER=${EARSHOT_ES_USER:-nobody}
HEALTH_TIMEOUT=${EARSHOT_SERVICES_TIMEOUT:-180}   # seconds, per member
STOP_TIMEOUT=30
MEMBERS=(1 2 3)

KAFKA_DIST=$EARSHOT_CACHE/kafka-$KAFKA_VERSION
ES_DIST=$EARSHOT_CACHE/elasticsearch-$ES_VERSION
KAFKA_ROOT=$CLUSTER_HOME/kafka
ES_ROOT=$CLUSTER_HOME/es
RUN_DIR=$CLUSTER_HOME/run

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Under root the ES nodes run as $ES_USER (Elasticsearch refuses root); a state folder that user
# cannot enter moves, with a copy of the distribution, under /var/tmp (as services.sh does).
ES_DROP=()
if ((EUID == 0)) && id "$ES_USER" >/dev/null 2>&1; then
  drop=(setpriv --reuid="$(id -u "$ES_USER")" --regid="$(id -g "$ES_USER")" --clear-groups)
  if ! "${drop[@]}" test -x "$CLUSTER_HOME" -a -x "$ES_DIST/bin" 2>/dev/null; then
    base=/var/tmp/earshot-cluster-$(printf '%s' "$CLUSTER_HOME" | sha256sum | cut -c1-12)
    ES_ROOT=$base/es
    if [[ ! -x $base/elasticsearch-$ES_VERSION/bin/elasticsearch && -x $ES_DIST/bin/elasticsearch ]]; then
      mkdir -p "$base"; chmod 755 "$base"; cp -a "$ES_DIST" "$base/"
    fi
    ES_DIST=$base/elasticsearch-$ES_VERSION
  fi
  ES_DROP=("${drop[@]}")
fi

# ---------------------------------------------------------------- helpers ---

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() {  # pid_alive PIDFILE MARKER -> prints the pid if it runs our MARKER
  local file=$1 marker=$2 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
  echo "$pid"
}

session_pids() {  # session_pids SIDFILE: the member's processes (it runs in a session of its own)
  local sid
  [[ -s $1 ]] || return 0
  sid=$(<"$1")
  [[ $sid =~ ^[0-9]+$ ]] || return 0
  pgrep -s "$sid" 2>/dev/null || true
}

wait_gone() {  # wait_gone SECONDS PID...
  local limit=$1 i p left; shift
  for ((i = 0; i < limit * 10; i++)); do
    left=0
    for p in "$@"; do [[ -e /proc/$p ]] && left=1; done
    ((left)) || return 0
    sleep 0.1
  done
  return 1
}

show_log() {
  local f
  for f in "$@"; do
    [[ -f $f ]] || continue
    printf '\n----- last 30 lines of %s -----\n' "$f" >&2
    tail -n 30 "$f" >&2
  done
}

# end_member NAME SIDFILE SIGNAL: signal every process of the member's session, wait until gone.
end_member() {
  local name=$1 sidfile=$2 sig=$3 pids
  pids=$(session_pids "$sidfile")
  if [[ -z $pids ]]; then
    log "$name: not running"
    rm -f "$sidfile"
    return 0
  fi
  log "$name: SIG$sig to $(echo $pids)"
  # shellcheck disable=SC2086
  kill -"$sig" $pids 2>/dev/null || true
  # shellcheck disable=SC2086
  if ! wait_gone "$STOP_TIMEOUT" $pids; then
    log "$name: still running after ${STOP_TIMEOUT}s, SIGKILL"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    # shellcheck disable=SC2086
    wait_gone 30 $pids || die "$name: $(echo $pids) survived SIGKILL"
  fi
  rm -f "$sidfile"
}

check_member() {
  [[ $1 =~ ^[123]$ ]] || die "member must be 1, 2 or 3, not '${1:-}'"
}

need_dists() {
  [[ -f $KAFKA_DIST/.complete ]] || die "no Kafka jars in $KAFKA_DIST: run 'bash deploy/local/services.sh fetch' first"
  [[ -x $ES_DIST/bin/elasticsearch ]] || die "no Elasticsearch in $ES_DIST: run 'bash deploy/local/services.sh fetch' first"
}

KAFKA_CLI=(java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
           "-Dlog4j.configuration=file:$SCRIPT_DIR/tools-log4j.properties"
           -cp "$KAFKA_DIST/libs/*")

bootstrap() { local n out=(); for n in "${MEMBERS[@]}"; do out+=("127.0.0.1:$((KAFKA_BASE + n))"); done; (IFS=,; echo "${out[*]}"); }
es_urls() { local n out=(); for n in "${MEMBERS[@]}"; do out+=("http://127.0.0.1:$((ES_HTTP_BASE + n))"); done; (IFS=,; echo "${out[*]}"); }

# ------------------------------------------------------------------ kafka ---

kafka_dir() { echo "$KAFKA_ROOT/$1"; }

write_kafka_config() {  # write_kafka_config N
  local n=$1 dir voters="" m
  dir=$(kafka_dir "$n")
  mkdir -p "$dir/data" "$dir/logs"
  for m in "${MEMBERS[@]}"; do voters+="${voters:+,}$m@127.0.0.1:$((CONTROLLER_BASE + m))"; done
  cat >"$dir/server.properties" <<EOF
# Written by deploy/local/cluster.sh at each start; edit the script, not this.
# Broker+controller $n of 3, loopback only.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$((KAFKA_BASE + n)),CONTROLLER://127.0.0.1:$((CONTROLLER_BASE + n))
advertised.listeners=PLAINTEXT://127.0.0.1:$((KAFKA_BASE + n))
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=$KAFKA_PARTITIONS
auto.create.topics.enable=true
# Every record on 3 brokers; a write (acks=all) is acknowledged once 2 have it, so one broker
# may be lost at any time without losing an acknowledged record or refusing writes.
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=4
auto.leader.rebalance.enable=true
leader.imbalance.check.interval.seconds=30
# A broker that stops fetching leaves the ISR after 10 s (default 30 s).
replica.lag.time.max.ms=10000
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
background.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=67108864
EOF
}

kafka_cluster_id() {
  local file=$KAFKA_ROOT/cluster.id
  if [[ ! -s $file ]]; then
    mkdir -p "$KAFKA_ROOT"
    "${KAFKA_CLI[@]}" kafka.tools.StorageTool random-uuid >"$file.tmp" || die "kafka: StorageTool random-uuid failed"
    mv "$file.tmp" "$file"
  fi
  cat "$file"
}

start_broker() {  # start_broker N: launch unless running (no wait)
  local n=$1 dir logs pid
  dir=$(kafka_dir "$n"); logs=$dir/logs
  if pid=$(pid_alive "$dir/kafka.pid" kafka.Kafka); then
    log "kafka-$n: already running (pid $pid)"
    return 0
  fi
  port_open $((KAFKA_BASE + n)) && die "port $((KAFKA_BASE + n)) is in use by another process"
  port_open $((CONTROLLER_BASE + n)) && die "port $((CONTROLLER_BASE + n)) is in use by another process"
  write_kafka_config "$n"
  if [[ ! -f $dir/data/meta.properties ]]; then
    "${KAFKA_CLI[@]}" kafka.tools.StorageTool format -t "$(kafka_cluster_id)" -c "$dir/server.properties" \
      >"$logs/format.log" 2>&1 || { show_log "$logs/format.log"; die "kafka-$n: storage format failed"; }
  fi
  : >"$logs/kafkaServer.out"
  log "kafka-$n: starting on 127.0.0.1:$((KAFKA_BASE + n)) (controller $((CONTROLLER_BASE + n)))"
  (
    cd "$dir"
    # shellcheck disable=SC2086,SC2016
    setsid bash -c 'echo $$ >"$0"; echo $$ >"${0%/*}/kafka.sid"; exec nohup "$@"' "$dir/kafka.pid" \
      java $KAFKA_HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
        -XX:ActiveProcessorCount=2 -Djava.awt.headless=true -Dkafka.logs.dir="$logs" \
        -Dlog4j.configuration="file:$SCRIPT_DIR/kafka-log4j.properties" \
        -cp "$KAFKA_DIST/libs/*" kafka.Kafka "$dir/server.properties" \
      >"$logs/kafkaServer.out" 2>&1 </dev/null 9>&- &
  )
}

wait_broker() {  # wait_broker N: until it serves its listener
  local n=$1 dir logs deadline=$((SECONDS + HEALTH_TIMEOUT))
  dir=$(kafka_dir "$n"); logs=$dir/logs
  sleep 1
  until port_open $((KAFKA_BASE + n)) && grep -q 'Kafka Server started' "$logs/kafkaServer.out" 2>/dev/null; do
    pid_alive "$dir/kafka.pid" kafka.Kafka >/dev/null || { show_log "$logs/kafkaServer.out"; die "kafka-$n: exited during startup"; }
    ((SECONDS < deadline)) || { show_log "$logs/kafkaServer.out"; die "kafka-$n: not started after ${HEALTH_TIMEOUT}s"; }
    sleep 1
  done
  log "kafka-$n: started (pid $(<"$dir/kafka.pid"))"
}

kill_broker() { end_member "kafka-$1" "$(kafka_dir "$1")/kafka.sid" KILL; rm -f "$(kafka_dir "$1")/kafka.pid"; }
stop_broker() { end_member "kafka-$1" "$(kafka_dir "$1")/kafka.sid" TERM; rm -f "$(kafka_dir "$1")/kafka.pid"; }

# --------------------------------------------------------- elasticsearch ---

es_dir() { echo "$ES_ROOT/$1"; }

write_es_config() {  # write_es_config N
  local n=$1 dir conf seeds="" masters="" m
  dir=$(es_dir "$n"); conf=$dir/config
  mkdir -p "$conf" "$dir/data" "$dir/logs" "$dir/tmp"
  cp "$ES_DIST/config/jvm.options" "$ES_DIST/config/log4j2.properties" "$conf/"
  for m in "${MEMBERS[@]}"; do
    seeds+="${seeds:+, }127.0.0.1:$((ES_TRANSPORT_BASE + m))"
    masters+="${masters:+, }earshot-cluster-$m"
  done
  cat >"$conf/elasticsearch.yml" <<EOF
# Written by deploy/local/cluster.sh at each start; edit the script, not this.
# Node $n of 3, loopback only, security OFF (nothing listens beyond 127.0.0.1).
cluster.name: earshot-cluster
node.name: earshot-cluster-$n
network.host: 127.0.0.1
http.port: $((ES_HTTP_BASE + n))
transport.port: $((ES_TRANSPORT_BASE + n))
discovery.seed_hosts: [$seeds]
# Read only when the cluster forms the first time; ignored by a node that has joined once.
cluster.initial_master_nodes: [$masters]
path.data: $dir/data
path.logs: $dir/logs
xpack.security.enabled: false
xpack.ml.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
EOF
  if ((EUID == 0)) && ((${#ES_DROP[@]})); then
    chmod 755 "$ES_ROOT" "$(dirname "$ES_ROOT")" 2>/dev/null || true
    chown -R "$ES_USER:$(id -gn "$ES_USER")" "$dir"
  fi
}

start_node() {  # start_node N: launch unless running (no wait)
  local n=$1 dir logs pid jhome
  dir=$(es_dir "$n"); logs=$dir/logs
  if pid=$(pid_alive "$dir/es.pid" org.elasticsearch); then
    log "es-$n: already running (pid $pid)"
    return 0
  fi
  port_open $((ES_HTTP_BASE + n)) && die "port $((ES_HTTP_BASE + n)) is in use by another process"
  port_open $((ES_TRANSPORT_BASE + n)) && die "port $((ES_TRANSPORT_BASE + n)) is in use by another process"
  mkdir -p "$ES_ROOT"
  write_es_config "$n"
  rm -f "$dir/es.pid"
  jhome=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
  log "es-$n: starting on http://127.0.0.1:$((ES_HTTP_BASE + n)) (transport $((ES_TRANSPORT_BASE + n)))"
  (
    cd "$dir"
    export ES_JAVA_HOME=$jhome ES_PATH_CONF=$dir/config ES_TMPDIR=$dir/tmp
    export ES_JAVA_OPTS="$ES_HEAP_OPTS -XX:ActiveProcessorCount=2"
    unset JAVA_HOME || true
    local envs=()
    ((${#ES_DROP[@]})) && envs=(env HOME="$dir/tmp" USER="$ES_USER" LOGNAME="$ES_USER")
    # -d: the launcher exits once the node runs; -p: the node writes its own pid.
    # shellcheck disable=SC2016
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/es.sid" \
      "${ES_DROP[@]}" "${envs[@]}" nohup "$ES_DIST/bin/elasticsearch" -d -p "$dir/es.pid" \
      >"$logs/stdout.log" 2>&1 </dev/null 9>&- &
  )
}

wait_node() {  # wait_node N: until it answers and sees the cluster's master
  local n=$1 dir deadline=$((SECONDS + HEALTH_TIMEOUT)) out=""
  dir=$(es_dir "$n")
  sleep 2
  while :; do
    if port_open $((ES_HTTP_BASE + n)); then
      out=$(curl -s -m 10 "http://127.0.0.1:$((ES_HTTP_BASE + n))/_cluster/health?timeout=5s" || true)
      [[ $out == *'"status":"green"'* || $out == *'"status":"yellow"'* ]] && break
    elif [[ -z $(session_pids "$dir/es.sid") ]] && ! pid_alive "$dir/es.pid" org.elasticsearch >/dev/null; then
      show_log "$dir/logs/stdout.log" "$dir/logs/earshot-cluster.log"
      die "es-$n: exited during startup"
    fi
    ((SECONDS < deadline)) || { show_log "$dir/logs/earshot-cluster.log"; die "es-$n: not healthy after ${HEALTH_TIMEOUT}s (${out:-no answer})"; }
    sleep 2
  done
  log "es-$n: joined (pid $(cat "$dir/es.pid" 2>/dev/null)), $(printf '%s' "$out" | grep -o '"status":"[a-z]*"')"
}

# The node's session is its launcher's; after -d only the node is left in it.
kill_node() { end_member "es-$1" "$(es_dir "$1")/es.sid" KILL; rm -f "$(es_dir "$1")/es.pid"; }
stop_node() { end_member "es-$1" "$(es_dir "$1")/es.sid" TERM; rm -f "$(es_dir "$1")/es.pid"; }

# All members at once: stopped one by one, the last broker's controlled shutdown would wait for a
# controller quorum that is already gone (and be killed after STOP_TIMEOUT).
stop_all() {
  local n pids=()
  for n in "${MEMBERS[@]}"; do stop_node "$n" & pids+=($!); done
  for n in "${MEMBERS[@]}"; do stop_broker "$n" & pids+=($!); done
  local rc=0 p
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  ((rc == 0)) || die "a member did not stop"
}

# ------------------------------------------------------------------- main ---

cmd=${1:-}
arg=${2:-}
mkdir -p "$RUN_DIR"
exec 9>"$RUN_DIR/.lock"
flock -w 300 9 || die "another cluster.sh holds $RUN_DIR/.lock"

case $cmd in
  up)
    need_dists
    for n in "${MEMBERS[@]}"; do start_broker "$n"; done
    for n in "${MEMBERS[@]}"; do start_node "$n"; done
    for n in "${MEMBERS[@]}"; do wait_broker "$n"; done
    for n in "${MEMBERS[@]}"; do wait_node "$n"; done
    out=$(timeout 90 "${KAFKA_CLI[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap)" --list 2>&1) \
      || { printf '%s\n' "$out" >&2; die "kafka: metadata round trip failed"; }
    health=$(curl -s -m 60 "http://127.0.0.1:$((ES_HTTP_BASE + 1))/_cluster/health?wait_for_nodes=3&timeout=50s")
    [[ $health == *'"number_of_nodes":3'* ]] || die "es: 3 nodes not seen: $health"
    log "up: EARSHOT_KAFKA_BOOTSTRAP=$(bootstrap) EARSHOT_ES_URL=$(es_urls)"
    ;;
  down)
    stop_all
    ;;
  reset)
    stop_all
    rm -rf "$KAFKA_ROOT" "$ES_ROOT"
    log "deleted $KAFKA_ROOT and $ES_ROOT"
    ;;
  status)
    rc=0
    for n in "${MEMBERS[@]}"; do
      if pid=$(pid_alive "$(kafka_dir "$n")/kafka.pid" kafka.Kafka) && port_open $((KAFKA_BASE + n)); then
        printf 'kafka-%s running  pid %-7s 127.0.0.1:%s\n' "$n" "$pid" $((KAFKA_BASE + n))
      else printf 'kafka-%s stopped\n' "$n"; rc=3; fi
    done
    for n in "${MEMBERS[@]}"; do
      if pid=$(pid_alive "$(es_dir "$n")/es.pid" org.elasticsearch) && port_open $((ES_HTTP_BASE + n)); then
        printf 'es-%s    running  pid %-7s http://127.0.0.1:%s\n' "$n" "$pid" $((ES_HTTP_BASE + n))
      else printf 'es-%s    stopped\n' "$n"; rc=3; fi
    done
    echo "EARSHOT_KAFKA_BOOTSTRAP=$(bootstrap)"
    echo "EARSHOT_ES_URL=$(es_urls)"
    exit $rc
    ;;
  kill-broker) check_member "$arg"; kill_broker "$arg" ;;
  stop-broker) check_member "$arg"; stop_broker "$arg" ;;
  start-broker) check_member "$arg"; need_dists; start_broker "$arg"; wait_broker "$arg" ;;
  kill-node) check_member "$arg"; kill_node "$arg" ;;
  stop-node) check_member "$arg"; stop_node "$arg" ;;
  start-node) check_member "$arg"; need_dists; start_node "$arg"; wait_node "$arg" ;;
  *) usage ;;
esac
