#!/usr/bin/env bash
# Local Kafka broker + Elasticsearch node for earshot development.
#
#   bash deploy/local/services.sh fetch|up|down|status|reset [kafka|es]
#
# Both services come from Maven Central (the only place they can come from on
# machines that reach package registries only) and run as plain java processes
# under $EARSHOT_HOME (default <repo>/.earshot). See deploy/local/README.md.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

EARSHOT_HOME=${EARSHOT_HOME:-$REPO_ROOT/.earshot}
EARSHOT_CACHE=${EARSHOT_CACHE:-$EARSHOT_HOME/cache}

case ${1:-} in fetch|up|down|status|reset) ;; *) SHOW_USAGE=1 ;; esac
if [[ -z ${SHOW_USAGE:-} ]]; then
  # Absolute paths: the services run from their own working folders.
  mkdir -p "$EARSHOT_HOME" "$EARSHOT_CACHE"
  EARSHOT_HOME=$(cd "$EARSHOT_HOME" && pwd)
  EARSHOT_CACHE=$(cd "$EARSHOT_CACHE" && pwd)
fi

KAFKA_VERSION=${EARSHOT_KAFKA_VERSION:-3.9.1}
KAFKA_PORT=${EARSHOT_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${EARSHOT_KAFKA_CONTROLLER_PORT:-9093}
KAFKA_PARTITIONS=${EARSHOT_KAFKA_PARTITIONS:-4}
KAFKA_HEAP_OPTS=${EARSHOT_KAFKA_HEAP_OPTS:--Xmx1g -Xms512m}

ES_VERSION=${EARSHOT_ES_VERSION:-8.19.21}
ES_PORT=${EARSHOT_ES_PORT:-9200}
# Elasticsearch refuses to run as root. When this script runs as root (CI,
# containers), the node runs as this unprivileged user instead.
ES_USER=${EARSHOT_ES_USER:-nobody}
ES_HEAP_OPTS=${EARSHOT_ES_JAVA_OPTS:--Xms1g -Xmx1g}

HEALTH_TIMEOUT=${EARSHOT_SERVICES_TIMEOUT:-120}   # seconds, per service
STOP_TIMEOUT=30                                    # seconds before SIGKILL
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

RUN_DIR=$EARSHOT_HOME/run
KAFKA_HOME_DIR=$EARSHOT_HOME/kafka
ES_HOME_DIR=$EARSHOT_HOME/es
KAFKA_DIST=$EARSHOT_CACHE/kafka-$KAFKA_VERSION
ES_DIST=$EARSHOT_CACHE/elasticsearch-$ES_VERSION
KAFKA_PID=$RUN_DIR/kafka.pid
# Written by the node itself (-p), so it lives in a folder the node may write.
ES_PID=$ES_HOME_DIR/es.pid
ES_LAUNCHER_PID=$RUN_DIR/es-launcher.pid
KAFKA_SID=$RUN_DIR/kafka.sid           # session id of the broker's processes (setsid)
ES_SID=$RUN_DIR/es.sid                 # session id of the node's processes (the launcher's pid)
KAFKA_PORTS_FILE=$RUN_DIR/kafka.ports   # ports the running broker was started with
ES_PORT_FILE=$RUN_DIR/es.port

# Elasticsearch refuses to run as root, so under root the node runs as $ES_USER, who must be
# able to reach its files. A checkout inside a private folder (mode 0700, as `mktemp -d` makes)
# would lock that user out: then the node's distribution and data live under a
# world-traversable folder in /var/tmp instead (one per EARSHOT_HOME).
if [[ -z ${SHOW_USAGE:-} ]] && ((EUID == 0)) && id "$ES_USER" >/dev/null 2>&1; then
  if ! setpriv --reuid="$(id -u "$ES_USER")" --regid="$(id -g "$ES_USER")" --clear-groups \
       test -x "$EARSHOT_HOME" -a -x "$EARSHOT_CACHE" 2>/dev/null; then
    # Created on first use (root's umask 022 makes it world-traversable).
    ES_BASE=${EARSHOT_ES_BASE:-/var/tmp/earshot-es-$(printf '%s' "$EARSHOT_HOME" | sha256sum | cut -c1-12)}
    ES_HOME_DIR=$ES_BASE/es
    ES_DIST=$ES_BASE/elasticsearch-$ES_VERSION
    ES_PID=$ES_HOME_DIR/es.pid
  fi
fi

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  cat >&2 <<EOF
usage: $0 {fetch|up|down|status|reset} [kafka|es]

  fetch   download Kafka $KAFKA_VERSION jars and Elasticsearch $ES_VERSION into
          $EARSHOT_CACHE (no-op when cached)
  up      fetch if needed, start what is not running, wait until healthy
  down    stop (SIGTERM, SIGKILL after ${STOP_TIMEOUT}s); no-op when stopped
  status  running/stopped and ports; exit 0 only if all named services run
  reset   down, then delete data and logs under $EARSHOT_HOME (cache kept)

The optional second argument limits the command to one service.
EOF
  exit 2
}

# ---------------------------------------------------------------- helpers ---

java_bin() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH (Java 17+ is needed)"
  readlink -f "$(command -v java)"
}

java_home() {  # the JDK/JRE folder that holds bin/java
  local j; j=$(java_bin)
  dirname "$(dirname "$j")"
}

port_open() {  # port_open PORT -> 0 if something listens on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pid_alive PIDFILE MARKER -> prints the pid if it runs and its command line
# contains MARKER (so a recycled pid is not mistaken for our service).
pid_alive() {
  local file=$1 marker=$2 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
  echo "$pid"
}

show_log() {  # show_log FILE...: last 30 lines of each existing file
  local f
  for f in "$@"; do
    [[ -f $f ]] || continue
    printf '\n----- last 30 lines of %s -----\n' "$f" >&2
    tail -n 30 "$f" >&2
  done
  printf -- '-----\n' >&2
}

sha_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

need_mvn() {
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven) not found: it fetches the Kafka jars from Maven Central"
}

# ------------------------------------------------------------------ fetch ---

fetch_kafka() {
  # Cache key: version + the POM and its dependency list; a change refetches.
  local key; key="$KAFKA_VERSION $(sha_of "$SCRIPT_DIR/kafka-pom.xml")"
  if [[ -f $KAFKA_DIST/.complete && $(<"$KAFKA_DIST/.complete") == "$key" ]]; then
    return 0
  fi
  need_mvn
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_DIST/libs"
  local tmp=$KAFKA_DIST/libs.tmp
  rm -rf "$tmp"; mkdir -p "$tmp"
  mvn -B -f "$SCRIPT_DIR/kafka-pom.xml" "$DEP_PLUGIN:copy-dependencies" \
      -Dkafka.version="$KAFKA_VERSION" -DincludeScope=runtime \
      -DoutputDirectory="$tmp" >"$EARSHOT_CACHE/mvn-kafka.log" 2>&1 \
    || { show_log "$EARSHOT_CACHE/mvn-kafka.log"
         die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION; see $EARSHOT_CACHE/mvn-kafka.log"; }
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 \
    || die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn copy-dependencies"
  rm -rf "$KAFKA_DIST/libs"; mv "$tmp" "$KAFKA_DIST/libs"
  printf '%s' "$key" >"$KAFKA_DIST/.complete"
  log "Kafka jars: $(find "$KAFKA_DIST/libs" -name '*.jar' | wc -l) jars, $(du -sh "$KAFKA_DIST/libs" | cut -f1)"
}

fetch_es() {
  if [[ -f $ES_DIST/.complete && -x $ES_DIST/bin/elasticsearch ]]; then
    return 0
  fi
  local gav=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip
  local tmp=$EARSHOT_CACHE/elasticsearch-$ES_VERSION.tmp
  local zip=$tmp/elasticsearch-$ES_VERSION.zip
  rm -rf "$tmp"; mkdir -p "$tmp"
  if command -v mvn >/dev/null 2>&1; then
    log "fetching $gav from Maven Central (mvn dependency:copy)"
    (cd "$tmp" && mvn -B "$DEP_PLUGIN:copy" -Dartifact="$gav" -DoutputDirectory="$tmp" \
        >"$EARSHOT_CACHE/mvn-es.log" 2>&1) \
      || { show_log "$EARSHOT_CACHE/mvn-es.log"; die "mvn could not fetch $gav; see $EARSHOT_CACHE/mvn-es.log"; }
  else
    local url=https://repo.maven.apache.org/maven2/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip
    log "mvn not found; fetching $url with curl"
    curl -fsSL --retry 3 -o "$zip" "$url" || die "could not download $url"
    local want; want=$(curl -fsSL "$url.sha1" | cut -c1-40) || die "could not download $url.sha1"
    [[ $(sha1sum "$zip" | cut -c1-40) == "$want" ]] || die "sha1 mismatch for $zip"
  fi
  [[ -f $zip ]] || die "$zip missing after download"
  log "unpacking $(du -h "$zip" | cut -f1) zip"
  if command -v unzip >/dev/null 2>&1; then
    unzip -q "$zip" -d "$tmp"
  else
    (cd "$tmp" && jar xf "$zip") && chmod +x "$tmp/elasticsearch-$ES_VERSION"/bin/*
  fi
  rm -f "$zip"
  [[ -x $tmp/elasticsearch-$ES_VERSION/bin/elasticsearch ]] || die "unexpected zip layout in $tmp"
  # The zip's config/ is mode 0660; make the whole dist readable so a shared
  # cache works for other users (and for the unprivileged ES user under root).
  chmod -R a+rX,go-w "$tmp/elasticsearch-$ES_VERSION"
  rm -rf "$ES_DIST"; mkdir -p "$(dirname "$ES_DIST")"
  mv "$tmp/elasticsearch-$ES_VERSION" "$ES_DIST"; rm -rf "$tmp"
  printf '%s' "$ES_VERSION" >"$ES_DIST/.complete"
  log "Elasticsearch $ES_VERSION unpacked: $(du -sh "$ES_DIST" | cut -f1)"
}

# ------------------------------------------------------------------ kafka ---

# A Kafka tool class with the cached jars, small and quiet: "${KAFKA_CLI[@]}" CLASS ARGS
KAFKA_CLI=(java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
           "-Dlog4j.configuration=file:$SCRIPT_DIR/tools-log4j.properties"
           -cp "$KAFKA_DIST/libs/*")

write_kafka_config() {
  mkdir -p "$KAFKA_HOME_DIR/data" "$KAFKA_HOME_DIR/logs"
  cat >"$KAFKA_HOME_DIR/server.properties" <<EOF
# Written by deploy/local/services.sh at each start; edit the script, not this.
# Single-node KRaft broker+controller for local development, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_HOME_DIR/data
num.partitions=$KAFKA_PARTITIONS
auto.create.topics.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=134217728
log.retention.check.interval.ms=300000
EOF
}

# start_X launches the service unless it already runs; it sets X_WAIT=1 when
# wait_X has to follow (so both JVMs boot in parallel before either is awaited).
KAFKA_WAIT=0
ES_WAIT=0

start_kafka() {
  local pid
  KAFKA_WAIT=1
  if pid=$(pid_alive "$KAFKA_PID" kafka.Kafka); then
    local had; had=$(cat "$KAFKA_PORTS_FILE" 2>/dev/null || true)
    [[ -z $had || $had == "$KAFKA_PORT $KAFKA_CONTROLLER_PORT" ]] \
      || die "kafka: already running (pid $pid) with ports $had, not $KAFKA_PORT $KAFKA_CONTROLLER_PORT; run 'down' first"
    if port_open "$KAFKA_PORT"; then
      log "kafka: already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
      KAFKA_WAIT=0
      return 0
    fi
    log "kafka: process $pid is up but port $KAFKA_PORT is not open yet; waiting"
  else
    rm -f "$KAFKA_PID"
    port_open "$KAFKA_PORT" && die "port 127.0.0.1:$KAFKA_PORT is in use by another process (not ours; set EARSHOT_KAFKA_PORT)"
    port_open "$KAFKA_CONTROLLER_PORT" && die "port 127.0.0.1:$KAFKA_CONTROLLER_PORT is in use by another process (set EARSHOT_KAFKA_CONTROLLER_PORT)"
    fetch_kafka
    write_kafka_config
    local logs=$KAFKA_HOME_DIR/logs
    if [[ ! -f $KAFKA_HOME_DIR/data/meta.properties ]]; then
      local cid
      cid=$("${KAFKA_CLI[@]}" kafka.tools.StorageTool random-uuid) || die "kafka: StorageTool random-uuid failed"
      log "kafka: formatting storage $KAFKA_HOME_DIR/data (cluster id $cid)"
      "${KAFKA_CLI[@]}" kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_HOME_DIR/server.properties" \
          >"$logs/format.log" 2>&1 || { show_log "$logs/format.log"; die "kafka: storage format failed, see $logs/format.log"; }
    fi
    printf '%s %s' "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" >"$KAFKA_PORTS_FILE"
    log "kafka: starting $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT); log $logs/server.log"
    # setsid + nohup: own session, survives the calling shell. The child writes
    # its own pid, then execs java (same pid). fd 9 (our lock) is not inherited.
    (
      cd "$KAFKA_HOME_DIR"
      # shellcheck disable=SC2086,SC2016
      setsid bash -c 'echo $$ >"$0"; echo $$ >"${0%/*}/kafka.sid"; exec nohup "$@"' "$KAFKA_PID" \
        java $KAFKA_HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
          -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
          -Djava.awt.headless=true \
          -Dkafka.logs.dir="$logs" \
          -Dlog4j.configuration="file:$SCRIPT_DIR/kafka-log4j.properties" \
          -cp "$KAFKA_DIST/libs/*" kafka.Kafka "$KAFKA_HOME_DIR/server.properties" \
        >"$logs/kafkaServer.out" 2>&1 </dev/null 9>&- &
    )
  fi
}

wait_kafka() {
  local logs=$KAFKA_HOME_DIR/logs deadline=$((SECONDS + HEALTH_TIMEOUT)) pid
  while :; do
    pid=$(pid_alive "$KAFKA_PID" kafka.Kafka) || {
      sleep 1  # the pid file may not be written yet right after launch
      pid=$(pid_alive "$KAFKA_PID" kafka.Kafka) || {
        show_log "$logs/kafkaServer.out"
        die "kafka: the broker process exited during startup; see $logs/kafkaServer.out and $logs/server.log"
      }
    }
    if port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$logs/kafkaServer.out" 2>/dev/null; then
      break
    fi
    if ((SECONDS >= deadline)); then
      show_log "$logs/kafkaServer.out"
      die "kafka: not healthy after ${HEALTH_TIMEOUT}s (pid $pid); see $logs/kafkaServer.out and $logs/server.log"
    fi
    sleep 1
  done
  # A real metadata round trip through the PLAINTEXT listener.
  local out
  if ! out=$(timeout 60 "${KAFKA_CLI[@]}" org.apache.kafka.tools.TopicCommand \
               --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list 2>&1); then
    printf '%s\n' "$out" >&2
    show_log "$logs/server.log"
    die "kafka: port open but the metadata request (TopicCommand --list) failed; see $logs/server.log"
  fi
  log "kafka: healthy (pid $pid), bootstrap 127.0.0.1:$KAFKA_PORT, $(printf '%s' "$out" | grep -c . || true) topic(s)"
}

# --------------------------------------------------------- elasticsearch ---

# Command prefix that drops root for the ES node (empty when not root).
ES_DROP=()
if ((EUID == 0)) && id "$ES_USER" >/dev/null 2>&1; then
  ES_DROP=(setpriv --reuid="$(id -u "$ES_USER")" --regid="$(id -g "$ES_USER")" --clear-groups
           env HOME="$ES_HOME_DIR/tmp" USER="$ES_USER" LOGNAME="$ES_USER")
fi

write_es_config() {
  local conf=$ES_HOME_DIR/config
  mkdir -p "$conf/jvm.options.d" "$ES_HOME_DIR/data" "$ES_HOME_DIR/logs" "$ES_HOME_DIR/tmp"
  if [[ -n ${ES_BASE:-} ]]; then chmod 755 "$ES_BASE"; fi  # whatever the umask, the ES user must enter it
  # Files of the distribution, refreshed from it at each start (so a version
  # bump picks up its jvm.options); the dist folder itself is never modified.
  cp "$ES_DIST/config/jvm.options" "$ES_DIST/config/log4j2.properties" "$conf/"
  local f
  for f in roles.yml role_mapping.yml users users_roles; do
    [[ -f $ES_DIST/config/$f && ! -f $conf/$f ]] && cp "$ES_DIST/config/$f" "$conf/"
  done
  cat >"$conf/elasticsearch.yml" <<EOF
# Written by deploy/local/services.sh at each start; edit the script, not this.
# Local development only: single node, bound to loopback, security OFF.
cluster.name: earshot-local
node.name: earshot-local-1
discovery.type: single-node
network.host: 127.0.0.1
http.port: $ES_PORT
path.data: $ES_HOME_DIR/data
path.logs: $ES_HOME_DIR/logs
# No TLS, no users: acceptable only because nothing listens beyond 127.0.0.1.
# deploy/compose and deploy/k8s keep security on.
xpack.security.enabled: false
# The minimal (integ-test-zip) distribution has no ML module; xpack.ml.enabled
# is still a known setting there, so switch it off explicitly.
xpack.ml.enabled: false
# Dev machines often have a full-ish disk: do not flip indices to read-only.
cluster.routing.allocation.disk.threshold_enabled: false
# Allow DELETE /earshot-* in dev and tests.
action.destructive_requires_name: false
EOF
  if ((EUID == 0)); then
    id "$ES_USER" >/dev/null 2>&1 || die "es: running as root and user '$ES_USER' does not exist (set EARSHOT_ES_USER)"
    chown -R "$ES_USER:$(id -gn "$ES_USER")" "$ES_HOME_DIR"
    "${ES_DROP[@]}" test -x "$ES_DIST/bin/elasticsearch" -a -w "$ES_HOME_DIR/data" \
      || die "es: user '$ES_USER' cannot run $ES_DIST/bin/elasticsearch or write $ES_HOME_DIR (a parent folder not searchable by others?); move EARSHOT_HOME/EARSHOT_CACHE or set EARSHOT_ES_USER"
  fi
}

start_es() {
  local pid logs=$ES_HOME_DIR/logs
  ES_WAIT=1
  local had; had=$(cat "$ES_PORT_FILE" 2>/dev/null || true)
  if pid=$(pid_alive "$ES_PID" org.elasticsearch || pid_alive "$ES_LAUNCHER_PID" elasticsearch); then
    [[ -z $had || $had == "$ES_PORT" ]] \
      || die "es: already running (pid $pid) on port $had, not $ES_PORT; run 'down' first"
  fi
  if pid=$(pid_alive "$ES_PID" org.elasticsearch); then
    if port_open "$ES_PORT"; then
      log "es: already running (pid $pid) on http://127.0.0.1:$ES_PORT"
      ES_WAIT=0
      return 0
    fi
    log "es: process $pid is up but port $ES_PORT is not open yet; waiting"
  elif pid=$(pid_alive "$ES_LAUNCHER_PID" elasticsearch); then
    log "es: launcher $pid is starting the node; waiting"
  else
    rm -f "$ES_PID" "$ES_LAUNCHER_PID"
    port_open "$ES_PORT" && die "port 127.0.0.1:$ES_PORT is in use by another process (not ours; set EARSHOT_ES_PORT)"
    fetch_es
    write_es_config
    local jhome who=""
    jhome=$(java_home)
    ((EUID == 0)) && who=" as user $ES_USER (it refuses root)"
    printf '%s' "$ES_PORT" >"$ES_PORT_FILE"
    log "es: starting $ES_VERSION on http://127.0.0.1:$ES_PORT$who; log $logs/earshot-local.log"
    (
      cd "$ES_HOME_DIR"
      export ES_JAVA_HOME=$jhome ES_PATH_CONF=$ES_HOME_DIR/config ES_TMPDIR=$ES_HOME_DIR/tmp
      export ES_JAVA_OPTS=$ES_HEAP_OPTS
      unset JAVA_HOME || true
      # -d: the launcher (a small CLI JVM) exits once the node has started, so
      # only the node stays (saves ~100 MB). -p: the node writes its own pid.
      # setpriv/env/nohup all exec, so es-launcher.pid is the launcher's pid.
      # shellcheck disable=SC2016
      setsid bash -c 'echo $$ >"$0"; echo $$ >"${0%/*}/es.sid"; exec "$@"' "$ES_LAUNCHER_PID" \
        "${ES_DROP[@]}" nohup "$ES_DIST/bin/elasticsearch" -d -p "$ES_PID" \
        >"$logs/stdout.log" 2>&1 </dev/null 9>&- &
    )
  fi
}

wait_es() {
  local logs=$ES_HOME_DIR/logs deadline=$((SECONDS + HEALTH_TIMEOUT)) out
  sleep 1
  while :; do
    if ! pid_alive "$ES_PID" org.elasticsearch >/dev/null && ! pid_alive "$ES_LAUNCHER_PID" elasticsearch >/dev/null; then
      show_log "$logs/stdout.log" "$logs/earshot-local.log"
      die "es: Elasticsearch exited during startup; see $logs/stdout.log and $logs/earshot-local.log"
    fi
    if port_open "$ES_PORT"; then
      out=$(curl -s -m 10 "http://127.0.0.1:$ES_PORT/_cluster/health?wait_for_status=yellow&timeout=5s" || true)
      if [[ $out == *'"status":"green"'* || $out == *'"status":"yellow"'* ]]; then
        break
      fi
    fi
    if ((SECONDS >= deadline)); then
      show_log "$logs/stdout.log" "$logs/earshot-local.log"
      die "es: not healthy after ${HEALTH_TIMEOUT}s; see $logs/earshot-local.log (last health answer: ${out:-none})"
    fi
    sleep 2
  done
  # With -d the launcher exits right after the node has started; drop its pid file.
  local i
  for ((i = 0; i < 20; i++)); do
    pid_alive "$ES_LAUNCHER_PID" elasticsearch >/dev/null || { rm -f "$ES_LAUNCHER_PID"; break; }
    sleep 0.5
  done
  local status=${out#*\"status\":\"}; status=${status%%\"*}
  log "es: healthy ($status), pid $(<"$ES_PID"), http://127.0.0.1:$ES_PORT"
}

# ------------------------------------------------------------------- stop ---

# A service is stopped when every process of it is gone, not when its main pid stops answering:
# each service starts in a session of its own (setsid), whose id is kept in a .sid file, and
# stop waits until no process of that session is left (a JVM still flushing, the ES launcher or
# a child it spawned). Only then may reset delete the data folders.
session_pids() {  # session_pids SIDFILE: pids of the service's session, one per line
  local sid
  [[ -s $1 ]] || return 0
  sid=$(<"$1")
  [[ $sid =~ ^[0-9]+$ ]] || return 0
  pgrep -s "$sid" 2>/dev/null || true
}

wait_gone() {  # wait_gone SECONDS PID...: 0 once none of the pids exists (zombies reaped too)
  local limit=$1 i p left; shift
  for ((i = 0; i < limit * 10; i++)); do
    left=0
    for p in "$@"; do [[ -e /proc/$p ]] && left=1; done
    ((left)) || return 0
    sleep 0.1
  done
  return 1
}

stop_pid() {  # stop_pid NAME PIDFILE MARKER [SIDFILE]
  local name=$1 file=$2 marker=$3 sidfile=${4:-} pid others
  if ! pid=$(pid_alive "$file" "$marker"); then
    rm -f "$file"
    return 1
  fi
  log "$name: stopping pid $pid (SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$STOP_TIMEOUT" "$pid"; then
    log "$name: still running after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone 30 "$pid" || die "$name: pid $pid survived SIGKILL for 30 s"
  fi
  rm -f "$file"
  return 0
}

stop_session() {  # stop_session NAME SIDFILE: end whatever is left of the service's session
  local name=$1 sidfile=$2 pids
  pids=$(session_pids "$sidfile")
  if [[ -n $pids ]]; then
    log "$name: stopping what is left of its session: $(echo $pids)"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    # shellcheck disable=SC2086
    if ! wait_gone 10 $pids; then
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      # shellcheck disable=SC2086
      wait_gone 30 $pids || die "$name: processes $(echo $pids) survived SIGKILL for 30 s"
    fi
  fi
  rm -f "$sidfile"
}

stop_kafka() {
  stop_pid kafka "$KAFKA_PID" kafka.Kafka || log "kafka: not running"
  stop_session kafka "$KAFKA_SID"
  rm -f "$KAFKA_PORTS_FILE"
}

stop_es() {
  local stopped=0
  stop_pid es "$ES_PID" org.elasticsearch && stopped=1
  # The launcher (CLI JVM) is gone once the node has started; stop it if a
  # start is still under way.
  stop_pid es-launcher "$ES_LAUNCHER_PID" elasticsearch && stopped=1
  ((stopped)) || log "es: not running"
  stop_session es "$ES_SID"
  rm -f "$ES_PORT_FILE"
}

remove_tree() {  # remove_tree DIR: rm -rf that tolerates a file appearing while it runs
  local i
  for ((i = 0; i < 5; i++)); do
    rm -rf "$1" 2>/dev/null && return 0
    sleep 1
  done
  rm -rf "$1"
}

# ----------------------------------------------------------------- status ---

status_one() {  # prints a line, returns 0 if running
  local name=$1 file=$2 marker=$3 port=$4 extra=$5 pid
  if pid=$(pid_alive "$file" "$marker"); then
    if port_open "$port"; then
      printf '%-6s running  pid %-7s %s\n' "$name" "$pid" "$extra"
      return 0
    fi
    printf '%-6s starting pid %-7s (port %s not open yet)\n' "$name" "$pid" "$port"
    return 1
  fi
  local note=""
  port_open "$port" && note=" (port $port is in use by another process)"
  printf '%-6s stopped%s\n' "$name" "$note"
  return 1
}

# ------------------------------------------------------------------- main ---

cmd=${1:-}
which=${2:-all}
[[ -z ${SHOW_USAGE:-} ]] || usage
case $which in all|kafka|es) ;; *) usage ;; esac
want() { [[ $which == all || $which == "$1" ]]; }

mkdir -p "$RUN_DIR"
# One services.sh at a time per state folder (parallel test runners, etc.).
exec 9>"$RUN_DIR/.lock"
flock -w 300 9 || die "another services.sh holds $RUN_DIR/.lock"

case $cmd in
  fetch)
    if want kafka; then fetch_kafka; fi
    if want es; then fetch_es; fi
    log "cache: $EARSHOT_CACHE"
    ;;
  up)
    # Fetch both first so a download failure does not leave one service up.
    if want kafka; then fetch_kafka; fi
    if want es; then fetch_es; fi
    # Launch both, then wait: the JVMs boot in parallel.
    if want kafka; then start_kafka; fi
    if want es; then start_es; fi
    if ((KAFKA_WAIT)); then wait_kafka; fi
    if ((ES_WAIT)); then wait_es; fi
    ;;
  down)
    if want es; then stop_es; fi
    if want kafka; then stop_kafka; fi
    ;;
  status)
    rc=0
    # Report the ports the running services were started with, if recorded.
    if [[ -s $KAFKA_PORTS_FILE ]]; then read -r KAFKA_PORT KAFKA_CONTROLLER_PORT <"$KAFKA_PORTS_FILE" || true; fi
    if [[ -s $ES_PORT_FILE ]]; then ES_PORT=$(<"$ES_PORT_FILE"); fi
    if want kafka; then
      status_one kafka "$KAFKA_PID" kafka.Kafka "$KAFKA_PORT" \
        "bootstrap 127.0.0.1:$KAFKA_PORT, controller 127.0.0.1:$KAFKA_CONTROLLER_PORT (Kafka $KAFKA_VERSION)" || rc=3
    fi
    if want es; then
      status_one es "$ES_PID" org.elasticsearch "$ES_PORT" \
        "http://127.0.0.1:$ES_PORT (Elasticsearch $ES_VERSION)" || rc=3
    fi
    exit $rc
    ;;
  reset)
    if want es; then
      stop_es
      remove_tree "$ES_HOME_DIR"; log "es: deleted $ES_HOME_DIR"
    fi
    if want kafka; then
      stop_kafka
      remove_tree "$KAFKA_HOME_DIR"; log "kafka: deleted $KAFKA_HOME_DIR"
    fi
    log "cache kept: $EARSHOT_CACHE"
    ;;
  *) usage ;;
esac
