#!/usr/bin/env bash
# Roster benchmark. Builds the release server, starts it on a fresh database, seeds one tenant
# with BIG members and SMALL_TENANTS tenants with SMALL_MEMBERS members, and loads it with wrk
# (../shared/bench/load.sh) at CONNECTIONS connections. Measures the bare actix-web + diesel
# ceiling (../shared/bench/ceiling) in the same run, on SQLite and (when PostgreSQL is benchmarked)
# on PostgreSQL; each backend is printed against its own. Prints figures; asserts nothing.
#
#   bench/run.sh [sqlite|postgres|both]        (default: both)
#
# env: DURATION seconds per load (10), CONNECTIONS (64), SETTLE seconds between loads (3), BIG (100000), SMALL_TENANTS (100),
#      SMALL_MEMBERS (100), HOOK_EVENTS events queued for the delivery figure (2000), PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres),
#      SHARED_BENCH (../shared/bench beside the repository), CARGO_TARGET_DIR (target in the repository),
#      HOOKS_ONLY=1 to run only the create loads (0, 1, 5 endpoints) and the delivery figures, for A/B
#      comparisons; ROUNDS (1) repeats the three create loads that many times in the same run;
#      SCIM_ONLY=1 to run only the SCIM figures (create through /scim/v2/Users, the userName lookup);
#      SCALE=1 to run only the scale figures: a small tenant's get, first page and search (q=SMALL_Q,
#      default smith) and the big tenant's search, cached and cold, on the database as seeded, then
#      again after growing it to SCALE_TENANTS tenants (10000) of SCALE_MEMBERS members (100) beside
#      the big one (bench_seed grow: the CSV import, SCALE_IN_FLIGHT tenants at a time, 8), with the
#      ratios, the database's size and the server's memory
set -euo pipefail
# psql: no NOTICE lines for the databases dropped "if exists".
export PGOPTIONS="${PGOPTIONS:--c client_min_messages=warning}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="${SHARED_BENCH:-$ROOT/../shared/bench}"
WHICH="${1:-both}"
DURATION="${DURATION:-10}"; CONN="${CONNECTIONS:-64}"; SETTLE="${SETTLE:-3}"
HOOK_EVENTS="${HOOK_EVENTS:-2000}"; HOOKS_ONLY="${HOOKS_ONLY:-0}"; SCIM_ONLY="${SCIM_ONLY:-0}"; ROUNDS="${ROUNDS:-1}"; SCALE="${SCALE:-0}"; BIG="${BIG:-100000}"; SMALL_TENANTS="${SMALL_TENANTS:-100}"; SMALL_MEMBERS="${SMALL_MEMBERS:-100}"
SCALE_TENANTS="${SCALE_TENANTS:-10000}"; SCALE_MEMBERS="${SCALE_MEMBERS:-100}"; SCALE_IN_FLIGHT="${SCALE_IN_FLIGHT:-8}"; SMALL_Q="${SMALL_Q:-smith}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PLATFORM=bench-platform-token
PORT=18181; COLD_PORT=18182; PAIR_PORT=18183; CEILING_PORT=18191; RECEIVER_PORT=18195
WORK="$(mktemp -d /tmp/roster-bench.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --release --quiet --bin roster --example bench_seed --example bench_receiver
# The ceiling is built from its own directory, so this repository's .cargo/config.toml (our
# SQLite build flags) does not apply to it: it stays the stack as it comes.
# Built only for the runs that measure it.
if [ "$HOOKS_ONLY" != 1 ] && [ "$SCALE" != 1 ]; then
  (cd "$SHARED/ceiling" && CARGO_TARGET_DIR="$TARGET/ceiling" cargo build --release --quiet)
fi
BIN="$TARGET/release/roster"; SEED="$TARGET/release/examples/bench_seed"; RECEIVER="$TARGET/release/examples/bench_receiver"
LOAD="$SHARED/load.sh"

wait_http() { for _ in $(seq 1 600); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "no answer from $1" >&2; return 1; }
field() { sed -n "s/.*\(^\| \)$1=\([0-9.]*\).*/\2/p"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  connections: $CONN  duration: ${DURATION}s"

# The ceilings, alone on the machine (the scale mode compares the app with itself, not with them):
# GET /db from SQLite, and, when PostgreSQL is benchmarked, the same from PostgreSQL (a database of
# its own, CEILING_DATABASE_URL). Each backend's get member is judged against its own ceiling.
# measure_ceiling LABEL [POSTGRES_URL] prints the figure line and sets CEILING_RPS_<LABEL>.
measure_ceiling() {
  local label="$1" pg="${2:-}" cpid line
  (cd "$SHARED/ceiling" && CEILING_DB="$WORK/ceiling.db" CEILING_DATABASE_URL="$pg" CEILING_TARGET="$TARGET/ceiling" exec ./run.sh "$CEILING_PORT") >"$WORK/ceiling-$label.log" 2>&1 &
  cpid=$!; PIDS+=("$cpid")
  wait_http "http://127.0.0.1:$CEILING_PORT/json"
  line="$("$LOAD" "http://127.0.0.1:$CEILING_PORT/db" "$DURATION" "$CONN")"
  printf -v "CEILING_RPS_$label" '%s' "$(echo "$line" | field rps)"
  echo "ceiling GET /db ($label): $line"
  kill "$cpid" 2>/dev/null || true; wait "$cpid" 2>/dev/null || true
  sleep "$SETTLE"
}
CEILING_RPS_sqlite=""; CEILING_RPS_postgres=""
if [ "$HOOKS_ONLY" != 1 ] && [ "$SCALE" != 1 ]; then
  measure_ceiling sqlite
  if [ "$WHICH" != sqlite ]; then
    CEILING_PG_DB="roster_ceiling_$$"
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $CEILING_PG_DB WITH (FORCE)" >/dev/null
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $CEILING_PG_DB" >/dev/null
    measure_ceiling postgres "${PG_ADMIN_URL%/*}/$CEILING_PG_DB"
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $CEILING_PG_DB WITH (FORCE)" >/dev/null
  fi
fi

# The webhook receiver, for both backends: 204 to every POST, GET /count says how many so far.
"$RECEIVER" "$RECEIVER_PORT" >"$WORK/receiver.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$RECEIVER_PORT/count"
received() { curl -sf "http://127.0.0.1:$RECEIVER_PORT/count"; }

# A new tenant on the enterprise plan: new_owner NAME EMAIL prints its id and its owner's token.
new_owner() {
  local made pass token
  made="$(curl -s "$B/api/v1/tenants" -H "Authorization: Bearer $PLATFORM" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$1\",\"owner_email\":\"$2\",\"plan\":\"enterprise\"}")"
  pass="$(echo "$made" | sed -n 's/.*"password":"\([^"]*\)".*/\1/p')"
  token="$(curl -s "$B/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\":\"$2\",\"password\":\"$pass\"}" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')"
  echo "$(echo "$made" | sed -n 's/.*"tenant_id":"\([^"]*\)".*/\1/p') $token"
}
# Webhook endpoints of TENANT, managed with the header AUTH: add_hooks TENANT AUTH N prints the ids
# of N new enabled endpoints taking every member event (`member.*`) to the receiver;
# drop_hooks TENANT AUTH ID... deletes them with their deliveries, sent or not.
add_hooks() {
  local i made id
  for i in $(seq 1 "$3"); do
    made="$(curl -s "$B/api/v1/tenants/$1/webhooks" -H "$2" -H 'Content-Type: application/json' \
      -d "{\"url\":\"http://127.0.0.1:$RECEIVER_PORT/hook/$i\",\"event_types\":[\"member.*\"]}")"
    id="$(echo "$made" | sed -n 's/.*"webhook":{[^}]*"id":"\([^"]*\)".*/\1/p')"
    [ -n "$id" ] || { echo "could not create a webhook endpoint: $made" >&2; return 1; }
    echo "$id"
  done
}
drop_hooks() {
  local tenant="$1" auth="$2" id; shift 2
  for id in "$@"; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$B/api/v1/tenants/$tenant/webhooks/$id" -H "$auth")" = 204 ] ||
      { echo "could not delete webhook endpoint $id" >&2; return 1; }
  done
}
# Deliveries of these endpoints still pending (at most 1 each is looked at: 0 means none).
pending() {
  local tenant="$1" auth="$2" id n=0; shift 2
  for id in "$@"; do
    curl -s "$B/api/v1/tenants/$tenant/webhooks/$id/deliveries?status=pending&limit=1" -H "$auth" | grep -q '"items":\[\]' || n=$((n + 1))
  done
  echo "$n"
}

# SCIM figures on the big tenant, with a `scim` key: users created through POST /scim/v2/Users at
# 16 in flight (as a directory's first sync sends them), and Okta's lookup
# `GET /Users?filter=userName eq "..."` of one of the 100,000 members, also at 16 in flight (a
# directory looks users up one by one per sync worker). Prints the two lines.
scim_figures() {
  local tenant="$1" auth="$2" member="$3" secret email filter
  secret="$(curl -s "$B/api/v1/tenants/$tenant/api-keys" -H "$auth" -H 'Content-Type: application/json' \
    -d '{"name":"bench scim","kind":"scim","role":"viewer"}' | sed -n 's/.*"secret":"\([^"]*\)".*/\1/p')"
  [ -n "$secret" ] || { echo "could not create a SCIM key" >&2; return 1; }
  email="$(curl -s "$B/api/v1/tenants/$tenant/users/$member" -H "$auth" | sed -n 's/.*"email":"\([^"]*\)".*/\1/p')"
  SCIM_CREATE="$(PREFIX="scim$$-$RANDOM" wrk -t2 -c16 -d"${DURATION}s" --timeout 30s -s "$ROOT/bench/scim_create.lua" \
    -H "Authorization: Bearer $secret" "$B/scim/v2/Users" | sed -n 's/^RESULT //p')"
  echo "SCIM create user (16 in flight): $SCIM_CREATE"; sleep "$SETTLE"
  filter="$(printf 'userName eq "%s"' "$email" | sed 's/ /%20/g; s/"/%22/g; s/@/%40/g')"
  SCIM_FIND="$("$LOAD" "$B/scim/v2/Users?filter=$filter" "$DURATION" 16 "Authorization: Bearer $secret")"
  echo "SCIM GET /Users?filter=userName eq (100k tenant, 16 in flight): $SCIM_FIND"; sleep "$SETTLE"
  SCIM_FIND4="$("$LOAD" "$B/scim/v2/Users?filter=$filter" "$DURATION" 4 "Authorization: Bearer $secret")"
  echo "  the same, 4 in flight: $SCIM_FIND4"; sleep "$SETTLE"
}

# The scale mode (SCALE=1; issue 15): a small tenant's get, first page and search and the big
# tenant's search on the database as seeded, then again after it grew to SCALE_TENANTS tenants of
# SCALE_MEMBERS members beside the big one; each figure's cost after against before (target:
# within 1.2x: work per request should follow the page, not the database), the database's size
# and the server's memory. Runs inside run_backend (its backend, url and pid).
# The server's memory in MiB from /proc/PID/status: "VmRSS RssAnon RssFile".
mem_now() { awk '/^VmRSS:/ {r=$2} /^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {printf "%d %d %d\n", r/1024, a/1024, f/1024}' "/proc/$1/status"; }
mem_text() { echo "$1" | awk '{printf "VmRSS %d MiB (RssAnon %d, RssFile %d)", $1, $2, $3}'; }
# Samples PID every 50 ms until FILE exists, then prints the peak of each of the three (each its own).
mem_peak_until() {
  local r=0 a=0 f=0 v
  while [ ! -f "$2" ]; do
    read -r -a v <<<"$(mem_now "$1")"
    [ "${v[0]}" -gt "$r" ] && r="${v[0]}"; [ "${v[1]}" -gt "$a" ] && a="${v[1]}"; [ "${v[2]}" -gt "$f" ] && f="${v[2]}"
    sleep 0.05
  done
  echo "$r $a $f"
}
# The database's size: pg_database_size, or SQLite's file with its WAL.
db_size_text() {
  if [ "$backend" = postgres ]; then
    psql "$url" -Atc "SELECT pg_database_size(current_database())" | awk '{printf "%.1f MiB (pg_database_size)", $1/1048576}'
  else
    awk -v d="$(stat -c %s "$url")" -v w="$(stat -c %s "$url-wal" 2>/dev/null || echo 0)" \
      'BEGIN{printf "%.1f MiB (file %.1f MiB + WAL %.1f MiB)", (d+w)/1048576, d/1048576, w/1048576}'
  fi
}
member_rows() {
  if [ "$backend" = postgres ]; then psql "$url" -Atc "SELECT count(*) FROM memberships"
  else sqlite3 "$url" "SELECT count(*) FROM memberships"; fi
}
# An owner's access token: login_token EMAIL TENANT (the seeded owners share OWNER_PASSWORD).
login_token() {
  printf '{"email":"%s","password":"%s","tenant_id":"%s"}' "$1" "$OWNER_PASSWORD" "$2" |
    curl -s "$B/api/v1/auth/login" -H 'Content-Type: application/json' --data-binary @- | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}
# One load of the scale figures: scale_load KEY BASE PATH AUTH LABEL, kept as fig[PHASE:KEY].
scale_load() {
  local out
  out="$("$LOAD" "$2$3" "$DURATION" "$CONN" "$4")"
  fig["$phase:$1"]="$out"
  echo "  $5: $out"; sleep "$SETTLE"
}
# The figures on the database as it is now: scale_phase small|large.
scale_phase() {
  local phase="$1" auth sauth sampler cold_pid total
  auth="Authorization: Bearer $(login_token "$OWNER_EMAIL" "$TENANT")"
  sauth="Authorization: Bearer $(login_token "$SMALL_OWNER_EMAIL" "$SMALL_TENANT")"
  total="$(curl -s "$B/api/v1/tenants/$SMALL_TENANT/users?limit=1" -H "$sauth" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')"
  dbs[$phase]="$(db_size_text)"; idle[$phase]="$(mem_now "$pid")"
  echo "-- $phase database: $(member_rows) memberships, ${dbs[$phase]}; the small tenant's list total $total; server idle: $(mem_text "${idle[$phase]}")"
  rm -f "$WORK/scale.done"; mem_peak_until "$pid" "$WORK/scale.done" >"$WORK/scale.peak" &
  sampler=$!
  scale_load get "$B" "/api/v1/tenants/$SMALL_TENANT/users/$SMALL_MEMBER" "$sauth" "get member (small tenant)"
  scale_load list "$B" "/api/v1/tenants/$SMALL_TENANT/users?limit=50" "$sauth" "list, first page (small tenant)"
  scale_load search "$B" "/api/v1/tenants/$SMALL_TENANT/users?q=$SMALL_Q&limit=50" "$sauth" "list q=$SMALL_Q (small tenant)"
  scale_load big_search "$B" "/api/v1/tenants/$TENANT/users?q=larsen&limit=50" "$auth" "list q=larsen (big tenant)"
  touch "$WORK/scale.done"; wait "$sampler"; loaded[$phase]="$(cat "$WORK/scale.peak")"
  echo "  server under these loads, at most: $(mem_text "${loaded[$phase]}")"
  # The two searches again on a second instance without the in-memory list results.
  DATABASE_URL="$url" ROSTER_DATA_DIR="$WORK" ROSTER_BIND="127.0.0.1:$COLD_PORT" ROSTER_PUBLIC_URL="http://127.0.0.1:$PORT" ROSTER_DEMO=false ROSTER_LIST_CACHE_BYTES=0 \
    ROSTER_DB_POOL_SIZE=32 RUST_LOG=warn "$BIN" serve >"$WORK/$backend-cold.log" 2>&1 &
  cold_pid=$!; PIDS+=("$cold_pid")
  wait_http "http://127.0.0.1:$COLD_PORT/healthz"
  scale_load search_cold "http://127.0.0.1:$COLD_PORT" "/api/v1/tenants/$SMALL_TENANT/users?q=$SMALL_Q&limit=50" "$sauth" "  same, list cache off"
  scale_load big_search_cold "http://127.0.0.1:$COLD_PORT" "/api/v1/tenants/$TENANT/users?q=larsen&limit=50" "$auth" "  same, list cache off"
  kill "$cold_pid" 2>/dev/null || true; wait "$cold_pid" 2>/dev/null || true
}
scale_run() {
  local -A fig=() dbs=() idle=() loaded=()
  local k grown sampler
  [ -n "${SMALL_TENANT:-}" ] || { echo "the scale mode needs SMALL_TENANTS of 1 or more" >&2; return 1; }
  scale_phase small
  grown=$(( (SCALE_TENANTS > SMALL_TENANTS ? SCALE_TENANTS - SMALL_TENANTS : 0) * SCALE_MEMBERS ))
  echo "growing: $((SCALE_TENANTS > SMALL_TENANTS ? SCALE_TENANTS - SMALL_TENANTS : 0)) tenants of $SCALE_MEMBERS members ($grown) through the CSV import, $SCALE_IN_FLIGHT tenants at a time"
  rm -f "$WORK/grow.done"; mem_peak_until "$pid" "$WORK/grow.done" >"$WORK/grow.peak" &
  sampler=$!
  "$SEED" grow "$B" "$PLATFORM" "$SMALL_TENANTS" "$SCALE_TENANTS" "$SCALE_MEMBERS" "$SCALE_IN_FLIGHT" >"$WORK/grow.env"
  touch "$WORK/grow.done"; wait "$sampler"
  # shellcheck disable=SC1091
  . "$WORK/grow.env"
  echo "grew by $grown members in ${GROW_SECS}s ($(awk -v n="$grown" -v s="$GROW_SECS" 'BEGIN{printf "%.0f", n/s}')/s); server during it, at most: $(mem_text "$(cat "$WORK/grow.peak")")"
  # As after the first seeding (run_backend): the state autovacuum leaves after a bulk load.
  if [ "$backend" = postgres ]; then psql "$url" -qc "VACUUM (ANALYZE)" >/dev/null; fi
  sleep "$SETTLE"
  scale_phase large
  echo "-- $backend summary (scale figures only): $((BIG + SMALL_TENANTS * SMALL_MEMBERS)) members, then $((BIG + SMALL_TENANTS * SMALL_MEMBERS + grown)) ($grown grown in ${GROW_SECS}s)"
  for k in get list search big_search search_cold big_search_cold; do
    awk -v k="$k" -v a="$(echo "${fig[small:$k]}" | field rps)" -v b="$(echo "${fig[large:$k]}" | field rps)" \
      -v p="$(echo "${fig[small:$k]}" | field p99)" -v q="$(echo "${fig[large:$k]}" | field p99)" \
      'BEGIN{c=a/b; r=q/p; printf "%-16s %7.0f/s -> %7.0f/s: cost x%.2f (%s); p99 %s -> %s ms: x%.2f (%s); target 1.2x\n", k, a, b, c, c<=1.2 ? "met" : "missed", p, q, r, r<=1.2 ? "met" : "missed"}'
  done
  echo "database: ${dbs[small]}, then ${dbs[large]}"
  echo "server idle: $(mem_text "${idle[small]}"), then $(mem_text "${idle[large]}")"
  echo "server under the cached loads, at most: $(mem_text "${loaded[small]}"), then $(mem_text "${loaded[large]}")"
}

run_backend() {
  local backend="$1" url
  if [ "$backend" = postgres ]; then
    local db="roster_bench_$$"
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $db" >/dev/null
    url="${PG_ADMIN_URL%/*}/$db"
  else
    url="$WORK/roster.db"
  fi
  echo; echo "== $backend"
  # Webhooks may go to the local receiver (http, loopback). The API key limit is raised out of the way, not switched off: its check stays on the path.
  DATABASE_URL="$url" ROSTER_DATA_DIR="$WORK" ROSTER_BIND="127.0.0.1:$PORT" ROSTER_DEMO=false ROSTER_PLATFORM_TOKEN="$PLATFORM" \
    ROSTER_WEBHOOK_ALLOWED_HOSTS=127.0.0.1 ROSTER_DB_POOL_SIZE=32 ROSTER_RATE_LOGIN_PER_MINUTE=0 ROSTER_RATE_API_KEY_PER_MINUTE=4000000000 RUST_LOG=warn "$BIN" serve >"$WORK/$backend.log" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  wait_http "http://127.0.0.1:$PORT/healthz"
  "$SEED" "http://127.0.0.1:$PORT" "$PLATFORM" "$BIG" "$SMALL_TENANTS" "$SMALL_MEMBERS" >"$WORK/seed.env"
  # shellcheck disable=SC1091
  . "$WORK/seed.env"
  # The state autovacuum leaves shortly after a bulk load: fresh planner statistics, the
  # visibility map set, the trigram index's pending entries merged. Left to autovacuum itself,
  # its passes over the 100,000 new rows of each table ran during the first loads and took a
  # share of the two cores from whichever figure was being measured.
  if [ "$backend" = postgres ]; then psql "$url" -qc "VACUUM (ANALYZE)" >/dev/null; fi
  B="http://127.0.0.1:$PORT"; local AUTH="Authorization: Bearer $TOKEN"
  printf '{"email":"%s","password":"%s","tenant_id":"%s"}' "$OWNER_EMAIL" "$OWNER_PASSWORD" "$TENANT" >"$WORK/login.json"
  echo "seeded $BIG members in ${SEED_BIG_SECS}s; argon2id hash ${HASH_MS} ms alone, ${HASH_PARALLEL_MS} ms each with every core hashing"
  # An owner API key, to read the same member with as with the owner's access token.
  local key_secret
  key_secret="$(curl -s "$B/api/v1/tenants/$TENANT/api-keys" -H "$AUTH" -H 'Content-Type: application/json' \
    -d '{"name":"bench","kind":"api","role":"owner"}' | sed -n 's/.*"secret":"\([^"]*\)".*/\1/p')"
  [ -n "$key_secret" ] || { echo "could not create an API key" >&2; return 1; }
  local KEY_AUTH="Authorization: Bearer $key_secret"
  if [ "$SCALE" = 1 ]; then
    scale_run
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    if [ "$backend" = postgres ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS roster_bench_$$ WITH (FORCE)" >/dev/null; fi
    return 0
  fi
  if [ "$SCIM_ONLY" = 1 ]; then
    local SCIM_CREATE SCIM_FIND SCIM_FIND4
    scim_figures "$TENANT" "$AUTH" "$MEMBER"
    echo "-- $backend summary (SCIM figures only)"
    echo "SCIM: create $(echo "$SCIM_CREATE" | field rps)/s at 16 in flight, p99 $(echo "$SCIM_CREATE" | field p99) ms; userName eq lookup on the 100k tenant p99 $(echo "$SCIM_FIND" | field p99) ms at 16 in flight ($(echo "$SCIM_FIND" | field rps)/s), $(echo "$SCIM_FIND4" | field p99) ms at 4"
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    if [ "$backend" = postgres ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS roster_bench_$$ WITH (FORCE)" >/dev/null; fi
    return 0
  fi

  local login get get_key list cold create mixed_get mixed_login
  if [ "$HOOKS_ONLY" != 1 ]; then
  # SETTLE seconds between loads: requests a load left queued in the server (64 logins are
  # 1.5 s of hashing) finish before the next figure starts.
  # The server's resident memory (VmRSS, MiB): idle after seeding, and its peak (sampled every
  # 50 ms) under the read loads (get member, with a key, the cached search) and during the export.
  rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$pid/status"; }
  peak_until() { local peak=0 v; while [ ! -f "$1" ]; do v="$(rss)"; [ "$v" -gt "$peak" ] && peak="$v"; sleep 0.05; done; echo "$peak"; }
  local mem_idle mem_reads
  mem_idle="$(rss)"
  login="$("$LOAD" "$B/api/v1/auth/login" "$DURATION" "$CONN" "Content-Type: application/json" "@$WORK/login.json")"
  echo "login:            $login"; sleep "$SETTLE"
  rm -f "$WORK/reads.done"; peak_until "$WORK/reads.done" >"$WORK/reads.peak" &
  local reads_sampler=$!
  get="$("$LOAD" "$B/api/v1/tenants/$TENANT/users/$MEMBER" "$DURATION" "$CONN" "$AUTH")"
  echo "get member:       $get"; sleep "$SETTLE"
  # The same read with an API key, right after (same member, connections and duration).
  get_key="$("$LOAD" "$B/api/v1/tenants/$TENANT/users/$MEMBER" "$DURATION" "$CONN" "$KEY_AUTH")"
  echo "get member (API key): $get_key"; sleep "$SETTLE"
  # PostgreSQL: two instances on the one database behind no balancer, loaded together (half the
  # connections each): the pair's get member against the one instance's above, and no error.
  local pair=""
  if [ "$backend" = postgres ]; then
    DATABASE_URL="$url" ROSTER_DATA_DIR="$WORK" ROSTER_BIND="127.0.0.1:$PAIR_PORT" ROSTER_PUBLIC_URL="http://127.0.0.1:$PORT" ROSTER_DEMO=false \
      ROSTER_DB_POOL_SIZE=32 ROSTER_RATE_LOGIN_PER_MINUTE=0 RUST_LOG=warn "$BIN" serve >"$WORK/$backend-pair.log" 2>&1 &
    local pair_pid=$!; PIDS+=("$pair_pid")
    wait_http "http://127.0.0.1:$PAIR_PORT/healthz"
    "$LOAD" "$B/api/v1/tenants/$TENANT/users/$MEMBER" "$DURATION" "$((CONN / 2))" "$AUTH" >"$WORK/pair.a" &
    local pair_a=$!
    "$LOAD" "http://127.0.0.1:$PAIR_PORT/api/v1/tenants/$TENANT/users/$MEMBER" "$DURATION" "$((CONN / 2))" "$AUTH" >"$WORK/pair.b"
    wait "$pair_a"
    kill "$pair_pid" 2>/dev/null || true; wait "$pair_pid" 2>/dev/null || true
    pair="$(awk -v a="$(field rps <"$WORK/pair.a")" -v b="$(field rps <"$WORK/pair.b")" \
      -v ea="$(sed -n 's/.*non2xx3xx=\([0-9]*\).*/\1/p' "$WORK/pair.a")" -v eb="$(sed -n 's/.*non2xx3xx=\([0-9]*\).*/\1/p' "$WORK/pair.b")" \
      -v one="$(echo "$get" | field rps)" \
      'BEGIN{printf "%.0f/s + %.0f/s = %.0f/s, %.2fx the one instance (%.0f/s); errors %d", a, b, a+b, (a+b)/one, one, ea+eb}')"
    echo "get member, two instances on one database: $pair"; sleep "$SETTLE"
  fi
  list="$("$LOAD" "$B/api/v1/tenants/$TENANT/users?q=larsen&limit=50" "$DURATION" "$CONN" "$AUTH")"
  touch "$WORK/reads.done"; wait "$reads_sampler"; mem_reads="$(cat "$WORK/reads.peak")"
  echo "list q=larsen (100k tenant, 1/60 of members match): $list"
  echo "resident memory: ${mem_idle} MiB idle after seeding, at most ${mem_reads} MiB under the read loads"; sleep "$SETTLE"
  # The same search on a second instance without the in-memory list results: every request
  # reads all 1,667 matches' sort keys (what a first search, or one after a write, costs).
  DATABASE_URL="$url" ROSTER_DATA_DIR="$WORK" ROSTER_BIND="127.0.0.1:$COLD_PORT" ROSTER_PUBLIC_URL="http://127.0.0.1:$PORT" ROSTER_DEMO=false ROSTER_LIST_CACHE_BYTES=0 \
    ROSTER_DB_POOL_SIZE=32 RUST_LOG=warn "$BIN" serve >"$WORK/$backend-cold.log" 2>&1 &
  local cold_pid=$!; PIDS+=("$cold_pid")
  wait_http "http://127.0.0.1:$COLD_PORT/healthz"
  cold="$("$LOAD" "http://127.0.0.1:$COLD_PORT/api/v1/tenants/$TENANT/users?q=larsen&limit=50" "$DURATION" "$CONN" "$AUTH")"
  kill "$cold_pid" 2>/dev/null || true; wait "$cold_pid" 2>/dev/null || true
  echo "  same, list cache off: $cold"; sleep "$SETTLE"
  fi
  # The webhook lines of the summary (of the last round).
  hook_summary() {
    local c0 c1 c5
    c0="$(echo "$create" | field rps)"; c1="$(echo "${hooked[1]}" | field rps)"; c5="$(echo "${hooked[5]}" | field rps)"
    awk -v a="$c0" -v b="$c1" -v c="$c5" -v p1="$(echo "${hooked[1]}" | field p99)" -v p5="$(echo "${hooked[5]}" | field p99)" \
      'BEGIN{printf "create with webhooks: 1 endpoint %.0f/s = %.0f%%, 5 endpoints %.0f/s = %.0f%% of none (%.0f/s; target 85%%); p99 %s / %s ms\n", b, 100*b/a, c, 100*c/a, a, p1, p5}'
    echo "deliveries to a local receiver: ${delivery[1]}/s to 1 endpoint, ${delivery[5]}/s to 5 ($HOOK_EVENTS events queued at once); during the create loads: $((sent[1] / DURATION))/s to 1, $((sent[5] / DURATION))/s to 5"
  }
  create_load() { PREFIX="$1" wrk -t2 -c"$CONN" -d"${DURATION}s" --timeout 30s -s "$ROOT/bench/create.lua" -H "$AUTH" \
    "$B/api/v1/tenants/$TENANT/users" | sed -n 's/^RESULT //p'; }
  local n hooks before out round
  local -A hooked=() sent=()
  for round in $(seq 1 "$ROUNDS"); do
  create="$(create_load "$backend$$-r$round")"
  echo "create member:    $create"; sleep "$SETTLE"
  # The same right after, with 1 and then 5 enabled endpoints taking every member event (a
  # delivery per endpoint written in the creating transaction; the worker sends them meanwhile).
  # Each scenario's endpoints are deleted, with what they had not sent, before the next.
  for n in 1 5; do
    hooks="$(add_hooks "$TENANT" "$AUTH" "$n")"
    before="$(received)"
    out="$(create_load "$backend$$-r$round-h$n")"
    sent[$n]=$(($(received) - before))
    hooked[$n]="$out"
    echo "create member, $n endpoint(s): $out; delivered meanwhile: ${sent[$n]}"
    # shellcheck disable=SC2086
    drop_hooks "$TENANT" "$AUTH" $hooks
    sleep "$SETTLE"
  done
  if [ "$ROUNDS" -gt 1 ]; then
    awk -v a="$(echo "$create" | field rps)" -v b="$(echo "${hooked[1]}" | field rps)" -v c="$(echo "${hooked[5]}" | field rps)" -v r="$round" \
      'BEGIN{printf "round %d: create 0/1/5 endpoints %.0f/%.0f/%.0f per s; 1 endpoint %.0f%%, 5 endpoints %.0f%% of none\n", r, a, b, c, 100*b/a, 100*c/a}'
  fi
  done
  # Deliveries per second: HOOK_EVENTS member.created events queued at once (one CSV import into
  # a tenant of their own) for 1, then 5 endpoints, timed from the import's answer until the
  # receiver has them all.
  local htenant htoken hauth t0 t1 want got
  local -A delivery=()
  read -r htenant htoken <<<"$(new_owner Hooks "hooks-$backend-$$@bench.test")"
  hauth="Authorization: Bearer $htoken"
  for n in 1 5; do
    hooks="$(add_hooks "$htenant" "$hauth" "$n")"
    awk -v n="$HOOK_EVENTS" -v p="h$n" 'BEGIN { print "email,full_name,role"
      for (i = 0; i < n; i++) printf "%s-%05d@hooks.bench.test,Hooked Person %05d,viewer\n", p, i, i }' >"$WORK/hooks.csv"
    before="$(received)"; want=$((n * HOOK_EVENTS))
    out="$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H "$hauth" -H 'Content-Type: text/csv' \
      --data-binary "@$WORK/hooks.csv" "$B/api/v1/tenants/$htenant/users/import")"
    t0="$(date +%s.%N)"
    got=0
    for _ in $(seq 1 6000); do
      got=$(($(received) - before)); [ "$got" -ge "$want" ] && break; sleep 0.05
    done
    t1="$(date +%s.%N)"
    # shellcheck disable=SC2086
    delivery[$n]="$(awk -v g="$got" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", g/(b-a)}')"
    # shellcheck disable=SC2086
    echo "deliveries, $n endpoint(s): $got of $want in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s = ${delivery[$n]}/s (import of $HOOK_EVENTS rows: HTTP ${out% *}, ${out#* } s); endpoints with deliveries still pending: $(pending "$htenant" "$hauth" $hooks)"
    # shellcheck disable=SC2086
    drop_hooks "$htenant" "$hauth" $hooks
  done
  sleep "$SETTLE"
  if [ "$HOOKS_ONLY" = 1 ]; then
    echo "-- $backend summary (webhook figures only)"
    hook_summary
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    if [ "$backend" = postgres ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS roster_bench_$$ WITH (FORCE)" >/dev/null; fi
    return 0
  fi
  # Reads while logins saturate the CPU: both loads at once, half the connections each.
  "$LOAD" "$B/api/v1/auth/login" "$DURATION" "$((CONN / 2))" "Content-Type: application/json" "@$WORK/login.json" >"$WORK/mixed_login" &
  local lpid=$!
  mixed_get="$("$LOAD" "$B/api/v1/tenants/$TENANT/users/$MEMBER" "$DURATION" "$((CONN / 2))" "$AUTH")"
  wait "$lpid"; mixed_login="$(cat "$WORK/mixed_login")"
  echo "get under logins: $mixed_get"
  echo "  (logins meanwhile: $mixed_login)"
  sleep "$SETTLE"

  # CSV import: 10,000 rows into a fresh tenant, one request, one transaction.
  local made ftenant fpass ftoken imported exported anon_before
  made="$(curl -s "$B/api/v1/tenants" -H "Authorization: Bearer $PLATFORM" -H 'Content-Type: application/json' \
    -d "{\"name\":\"Import\",\"owner_email\":\"import-$backend-$$@bench.test\",\"plan\":\"enterprise\"}")"
  ftenant="$(echo "$made" | sed -n 's/.*"tenant_id":"\([^"]*\)".*/\1/p')"
  fpass="$(echo "$made" | sed -n 's/.*"password":"\([^"]*\)".*/\1/p')"
  ftoken="$(curl -s "$B/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\":\"import-$backend-$$@bench.test\",\"password\":\"$fpass\"}" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')"
  awk 'BEGIN { print "email,full_name,role,department,section,job_title"
    for (i = 0; i < 10000; i++) printf "imp%05d@bench.test,Imported Person %05d,viewer,Dept %d,Team %d,Clerk\n", i, i, i % 20, i % 3 }' >"$WORK/import.csv"
  imported="$(curl -s -o "$WORK/import.out" -w '%{http_code} %{time_total}' -H "Authorization: Bearer $ftoken" \
    -H 'Content-Type: text/csv' --data-binary "@$WORK/import.csv" "$B/api/v1/tenants/$ftenant/users/import")"
  echo "import 10,000 rows (CSV, one transaction): HTTP ${imported% *}, ${imported#* } s"
  # Export of the big tenant, streamed. The server's anonymous memory (its heap; file pages
  # SQLite maps are left out) is sampled every 50 ms while it runs.
  anon() { awk '/RssAnon/ {print int($2/1024)}' "/proc/$pid/status"; }
  anon_before="$(anon)"
  rm -f "$WORK/export.done"
  ( peak=0; while [ ! -f "$WORK/export.done" ]; do v="$(anon)"; [ "$v" -gt "$peak" ] && peak="$v"; sleep 0.05; done
    echo "$peak" >"$WORK/export.peak" ) &
  local sampler=$!
  peak_until "$WORK/export.done" >"$WORK/export.rss" &
  local rss_sampler=$!
  exported="$(curl -s -o "$WORK/export.csv" -w '%{http_code} %{time_total}' -H "$AUTH" "$B/api/v1/tenants/$TENANT/users/export")"
  touch "$WORK/export.done"; wait "$sampler" "$rss_sampler"
  echo "export $(($(wc -l <"$WORK/export.csv") - 1)) members (CSV, streamed): HTTP ${exported% *}, ${exported#* } s; server heap ${anon_before} MiB before, at most $(cat "$WORK/export.peak") MiB during; resident at most $(cat "$WORK/export.rss") MiB"

  local SCIM_CREATE SCIM_FIND SCIM_FIND4
  scim_figures "$TENANT" "$AUTH" "$MEMBER"

  local cores bound
  cores="$(nproc)"
  bound="$(awk -v c="$cores" -v h="$HASH_MS" 'BEGIN{printf "%.1f", c*1000/h}')"
  echo "-- $backend summary"
  awk -v l="$(echo "$login" | field rps)" -v b="$bound" -v c="$cores" -v p="$HASH_PARALLEL_MS" \
    'BEGIN{printf "login: %.1f/s = %.0f%% of the argon2 bound (%s/s = cores / hash time); %.0f%% of what all cores hash at once (%.1f/s)\n", l, 100*l/b, b, 100*l/(c*1000/p), c*1000/p}'
  local ceiling_var="CEILING_RPS_$backend"
  awk -v g="$(echo "$get" | field rps)" -v c="${!ceiling_var}" -v b="$backend" 'BEGIN{printf "get member: %.0f/s = %.0f%% of the %s ceiling GET /db (%.0f/s; target 50%%)\n", g, 100*g/c, b, c}'
  awk -v k="$(echo "$get_key" | field rps)" -v g="$(echo "$get" | field rps)" \
    'BEGIN{printf "get member (API key): %.0f/s = %.0f%% of the same read with the access token (%.0f/s; goal 90%%)\n", k, 100*k/g, g}'
  [ -z "$pair" ] || echo "get member, two instances on one database: $pair"
  echo "list q p99: $(echo "$list" | field p99) ms ($(echo "$cold" | field p99) ms with the list cache off); get p99 under logins: $(echo "$mixed_get" | field p99) ms; create: $(echo "$create" | field rps)/s"
  hook_summary
  echo "import of 10,000 rows: ${imported#* } s (target under 5 s on SQLite); export of $BIG+ members: ${exported#* } s"
  echo "resident memory: ${mem_idle} MiB idle, at most ${mem_reads} MiB under the read loads (default list cache), at most $(cat "$WORK/export.rss") MiB during the export (after the create loads); target under 128 MiB"
  echo "SCIM: create $(echo "$SCIM_CREATE" | field rps)/s at 16 in flight (target 1,000/s on SQLite), p99 $(echo "$SCIM_CREATE" | field p99) ms; userName eq lookup on the 100k tenant p99 $(echo "$SCIM_FIND" | field p99) ms at 16 in flight ($(echo "$SCIM_FIND" | field rps)/s), $(echo "$SCIM_FIND4" | field p99) ms at 4 (target under 10 ms)"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  if [ "$backend" = postgres ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS roster_bench_$$ WITH (FORCE)" >/dev/null; fi
}

case "$WHICH" in
  sqlite) run_backend sqlite ;;
  postgres) run_backend postgres ;;
  both) run_backend sqlite; run_backend postgres ;;
  *) echo "usage: bench/run.sh [sqlite|postgres|both]" >&2; exit 2 ;;
esac
