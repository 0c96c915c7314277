# The scale-out backends on one machine, on loopback: PostgreSQL (Debian's), Garage
# (an S3-compatible object store, built once with cargo and cached), relays and nginx.
# Used by scripts/cluster (a local cluster) and scripts/test (the backends the tests
# use). Sourced after scripts/lib/common.sh, not executed.
#
# Every daemon started here writes its pid to $CLUSTER_DIR/pids/NAME.pid; cluster_stop
# stops them all and waits until they are gone.

GARAGE_VERSION=2.5.0
# The cached build: only what a one-node store needs (SQLite metadata, bundled C
# libraries; no LMDB, K2V, metrics or telemetry), at opt-level 1 — about half the
# compile time of the default release build, and fast enough for tests and a local
# cluster.
GARAGE_ROOT="${DORAN_TOOLS_DIR:-$HOME/.cache/dorandoran/tools}/garage-$GARAGE_VERSION"
GARAGE_BIN="$GARAGE_ROOT/bin/garage"

DORAN_CLUSTER_APT_PACKAGES=(postgresql nginx python3)

pg_bin_dir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

install_cluster_packages() {
    local missing=()
    for p in "${DORAN_CLUSTER_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        # Installing them must not start Debian's own PostgreSQL and nginx services
        # (ours run on free ports, and nothing may be left running): services are
        # refused while they install.
        local policy=/usr/sbin/policy-rc.d ours=""
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
            as_root chmod +x "$policy"
            ours=1
        fi
        as_root apt-get update -qq
        local status=0
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" || status=$?
        if [ -n "$ours" ]; then as_root rm -f "$policy"; fi
        return "$status"
    fi
}

# Builds Garage into the cache unless it is there. Prints nothing on a cache hit.
install_garage() {
    if [ -x "$GARAGE_BIN" ]; then return 0; fi
    log "building Garage $GARAGE_VERSION once (cached in $GARAGE_ROOT)"
    local started=$SECONDS
    # A test server: a quick build (no LTO, parallel codegen) is all it needs, and
    # `nice` lets the project's own build, running beside it, go first.
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
        CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_TARGET_DIR="$GARAGE_ROOT.build" \
        nice -n 10 cargo install garage --version "$GARAGE_VERSION" --locked --quiet \
        --no-default-features --features bundled-libs,sqlite --root "$GARAGE_ROOT"
    rm -rf "$GARAGE_ROOT.build"
    log "Garage built in $((SECONDS - started)) s"
}

# Whether GET URL answers 2xx.
http_ok() {
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Runs a command as the unprivileged owner of PostgreSQL's files when we are root
# (initdb and postgres refuse to run as root).
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    local i
    for ((i = 0; i < seconds * 10; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for $what" >&2
    return 1
}

# Where PostgreSQL keeps its files: $CLUSTER_DIR/pg, or — as root, when PostgreSQL
# runs as `postgres`, who may not traverse $CLUSTER_DIR's parents (a clone under
# /root) — a directory of its own under /tmp named after $CLUSTER_DIR.
pg_data_dir() {
    if [ "$(id -u)" -eq 0 ]; then
        echo "/tmp/doran-pg-$(printf '%s' "$CLUSTER_DIR" | md5sum | cut -c1-12)"
    else
        echo "$CLUSTER_DIR/pg"
    fi
}

# Starts PostgreSQL on a free port; sets PG_PORT and DORAN_PG_URL.
pg_start() {
    local bin
    bin="$(pg_bin_dir)"
    [ -n "$bin" ] || { echo "PostgreSQL is not installed" >&2; return 1; }
    local data
    data="$(pg_data_dir)"
    mkdir -p "$data" "$CLUSTER_DIR/pids"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$data"; chmod 700 "$data"; fi
    if [ ! -f "$data/PG_VERSION" ]; then
        as_pg "$bin/initdb" -D "$data" -U doran --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    PG_PORT=$(free_port)
    # Durability as in production (fsync, synchronous_commit): an acked change must
    # survive. Enough connections for a few relays' pools and the tests.
    as_pg "$bin/pg_ctl" -D "$data" -l "$data/log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$data -c max_connections=300 -c shared_buffers=128MB -c max_pred_locks_per_transaction=1024 -c max_pred_locks_per_page=16" >/dev/null
    cp "$data/postmaster.pid" "$CLUSTER_DIR/pids/postgres.pidfile"
    head -1 "$data/postmaster.pid" > "$CLUSTER_DIR/pids/postgres.pid"
    wait_for 30 PostgreSQL "$bin/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
    "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U doran -d postgres -qAt \
        -c "SELECT 1 FROM pg_database WHERE datname = 'doran'" | grep -q 1 ||
        "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U doran -d postgres -q -c "CREATE DATABASE doran" >/dev/null
    DORAN_PG_URL="postgres://doran@127.0.0.1:$PG_PORT/doran"
}

pg_stop() {
    local data
    data="$(pg_data_dir)"
    if [ -f "$data/postmaster.pid" ]; then
        as_pg "$(pg_bin_dir)/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    fi
    rm -f "$CLUSTER_DIR/pids/postgres.pid" "$CLUSTER_DIR/pids/postgres.pidfile"
}

# daemon PIDFILE OUT ERR COMMAND...: runs COMMAND in the background in a session of
# its own (so it outlives the calling shell and its process group, as PostgreSQL and
# nginx do), its pid in PIDFILE before this returns.
daemon() {
    local pidfile=$1 out=$2 err=$3
    shift 3
    rm -f "$pidfile"
    setsid sh -c 'echo $$ > "$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" \
        < /dev/null > "$out" 2>> "$err" &
    wait_for 10 "$pidfile" test -s "$pidfile"
}

garage() { "$GARAGE_BIN" -c "$CLUSTER_DIR/garage/garage.toml" "$@"; }

# Starts a one-node Garage in $CLUSTER_DIR/garage with bucket `doran` and a key for
# it; sets S3_PORT, DORAN_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
garage_start() {
    local dir="$CLUSTER_DIR/garage"
    mkdir -p "$dir/meta" "$dir/data" "$CLUSTER_DIR/pids"
    S3_PORT=$(free_port)
    local rpc_port admin_port
    rpc_port=$(free_port)
    admin_port=$(free_port)
    cat > "$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
# Stored means on disk: the relay publishes a blob before it grants it.
metadata_fsync = true
data_fsync = true
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
EOF
    daemon "$CLUSTER_DIR/pids/garage.pid" "$dir/out" "$dir/log" \
        "$GARAGE_BIN" -c "$dir/garage.toml" server
    wait_for 60 Garage garage status
    local node
    node=$(garage status 2>/dev/null | grep -oE '^[0-9a-f]{16}' | head -1)
    [ -n "$node" ] || { echo "Garage has no node id" >&2; garage status >&2; return 1; }
    # A store started before (scripts/cluster up after down) has its layout, bucket
    # and key already.
    if ! garage layout show 2>/dev/null | grep -qE 'Current cluster layout version: [1-9]'; then
        garage layout assign -z dc1 -c 1G "$node" >/dev/null
        garage layout apply --version 1 >/dev/null
    fi
    garage bucket info doran >/dev/null 2>&1 ||
        wait_for 30 "the Garage bucket" garage bucket create doran
    local key
    key=$(garage key info --show-secret doran-key 2>/dev/null) || key=$(garage key create doran-key)
    AWS_ACCESS_KEY_ID=$(grep -oE 'GK[0-9a-f]{24}' <<<"$key" | head -1)
    AWS_SECRET_ACCESS_KEY=$(grep -iE 'secret' <<<"$key" | grep -oE '[0-9a-f]{64}' | head -1)
    [ -n "$AWS_ACCESS_KEY_ID" ] && [ -n "$AWS_SECRET_ACCESS_KEY" ] ||
        { echo "cannot read the Garage key:" >&2; echo "$key" >&2; return 1; }
    garage bucket allow --read --write --owner doran --key doran-key >/dev/null
    DORAN_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
}

# Stops the process in pids/NAME.pid (TERM, then KILL after 10 s) and waits for it.
stop_pid() {
    local file="$CLUSTER_DIR/pids/$1.pid"
    [ -f "$file" ] || return 0
    local pid
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$file"
}

garage_stop() { stop_pid garage; }

# Fills scripts/lib/nginx.conf.in for the relays at $@ (host:port) and starts nginx on
# a free port; sets LB_PORT.
nginx_start() {
    local dir="$CLUSTER_DIR/nginx"
    mkdir -p "$dir/tmp" "$CLUSTER_DIR/pids"
    LB_PORT=$(free_port)
    local user="" upstreams="" r
    # As root, nginx's workers would become `nobody`, who cannot write $dir.
    if [ "$(id -u)" -eq 0 ]; then user="user root root;"; fi
    for r in "$@"; do upstreams+="        server $r max_fails=1 fail_timeout=2s;"$'\n'; done
    python3 - "$dir" "$LB_PORT" "$user" "$upstreams" > "$dir/nginx.conf" <<'PY'
import sys
d, port, user, ups = sys.argv[1:5]
t = open("scripts/lib/nginx.conf.in").read()
print(t.replace("@DIR@", d).replace("@PORT@", port).replace("@USER@", user).replace("@UPSTREAMS@", ups.rstrip("\n")))
PY
    local nginx
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
    "$nginx" -p "$dir" -c "$dir/nginx.conf" -g "daemon on;" 2>>"$dir/error.log"
    wait_for 10 nginx test -s "$dir/nginx.pid"
    cp "$dir/nginx.pid" "$CLUSTER_DIR/pids/nginx.pid"
}

nginx_stop() { stop_pid nginx; }

# Starts relay N (1, 2, …) on the shared backends (on SQLite and the blob folder in
# its data directory when PostgreSQL was not started: DORAN_PG_URL unset); sets
# RELAY_ADDR.
relay_start() {
    local n=$1 bin=$2
    local dir="$CLUSTER_DIR/relay$n"
    mkdir -p "$dir" "$CLUSTER_DIR/pids"
    local port
    port=$(free_port)
    local shared=()
    if [ -n "${DORAN_PG_URL:-}" ]; then
        shared=(--database "$DORAN_PG_URL" --blobs "s3://doran/blobs"
            --s3-endpoint "$DORAN_S3_ENDPOINT" --s3-region garage)
    fi
    DORAN_LOG="${DORAN_LOG:-info}" daemon "$CLUSTER_DIR/pids/relay$n.pid" "$dir/out" "$dir/log" "$bin" \
        --listen "127.0.0.1:$port" --data-dir "$dir" --server-id "${DORAN_SERVER_ID:-dorandoran-cluster}" \
        --config "$CLUSTER_DIR/relay.json" "${shared[@]}" --trusted-proxy 127.0.0.1
    wait_for 30 "relay $n" grep -q "listening on" "$dir/out" || { cat "$dir/log" >&2; return 1; }
    RELAY_ADDR="127.0.0.1:$port"
}

# Stops every daemon of $CLUSTER_DIR: relays first, then nginx, Garage, PostgreSQL.
cluster_stop() {
    [ -d "$CLUSTER_DIR/pids" ] || return 0
    local f
    for f in "$CLUSTER_DIR"/pids/relay*.pid; do
        [ -e "$f" ] && stop_pid "$(basename "$f" .pid)"
    done
    nginx_stop
    garage_stop
    pg_stop
}

# ----- for scripts/test -----

# Installs the packages and starts building Garage in the background (it overlaps the
# workspace's build); test_backends_up waits for it.
test_backends_begin() {
    install_cluster_packages
    GARAGE_BUILD_LOG=$(mktemp)
    install_garage > "$GARAGE_BUILD_LOG" 2>&1 &
    GARAGE_BUILD_JOB=$!
}

# Starts PostgreSQL and Garage in a temporary directory for the tests, exports what
# they read (DORAN_TEST_DATABASE, DORAN_TEST_S3, the S3 endpoint and keys,
# DORAN_REQUIRE_BACKENDS) and stops everything when the calling shell exits.
test_backends_up() {
    if ! wait "$GARAGE_BUILD_JOB"; then
        cat "$GARAGE_BUILD_LOG" >&2
        echo "building Garage failed" >&2
        return 1
    fi
    cat "$GARAGE_BUILD_LOG" >&2
    CLUSTER_DIR=$(mktemp -d)
    chmod 755 "$CLUSTER_DIR"
    trap 'cluster_stop; rm -rf "$(pg_data_dir)" "$CLUSTER_DIR"' EXIT
    log "starting PostgreSQL and Garage for the tests"
    pg_start
    garage_start
    export DORAN_TEST_DATABASE="$DORAN_PG_URL"
    export DORAN_TEST_S3="s3://doran"
    export DORAN_S3_ENDPOINT DORAN_S3_REGION=garage
    export DORAN_REQUIRE_BACKENDS=1
}

# The relay's end-to-end suites again, every relay on PostgreSQL and S3 — except the
# blob sweep's, which looks at the blob folder's files.
test_backends_suites() {
    log "the relay's end-to-end tests on PostgreSQL + S3"
    # --workspace with a filter rather than -p doran-server: the same build as the
    # first nextest run (-p would resolve features anew and compile ~90 crates again).
    DORAN_TEST_BACKEND=cluster cargo nextest run --workspace --locked --no-fail-fast \
        -E 'package(doran-server) & kind(test) & !binary(blob_sweep)'
}
