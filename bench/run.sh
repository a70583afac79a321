#!/usr/bin/env bash
# Roster benchmark. Builds the release server, starts it on a fresh database, seeds one tenant
# with BIG members and SMALL_TENANTS tenants with SMALL_MEMBERS members, and loads it with wrk
# (../shared/bench/load.sh) at CONNECTIONS connections. Measures the bare actix-web + diesel
# ceiling (../shared/bench/ceiling) in the same run. Prints figures; asserts nothing.
#
#   bench/run.sh [sqlite|postgres|both]        (default: both)
#
# env: DURATION seconds per load (10), CONNECTIONS (64), SETTLE seconds between loads (3), BIG (100000), SMALL_TENANTS (100),
#      SMALL_MEMBERS (100), PG_ADMIN_URL (postgres://postgres@127.0.0.1:5432/postgres),
#      SHARED_BENCH (../shared/bench beside the repository), CARGO_TARGET_DIR (target in the repository)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="${SHARED_BENCH:-$ROOT/../shared/bench}"
WHICH="${1:-both}"
DURATION="${DURATION:-10}"; CONN="${CONNECTIONS:-64}"; SETTLE="${SETTLE:-3}"
BIG="${BIG:-100000}"; SMALL_TENANTS="${SMALL_TENANTS:-100}"; SMALL_MEMBERS="${SMALL_MEMBERS:-100}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PLATFORM=bench-platform-token
PORT=18181; COLD_PORT=18182; CEILING_PORT=18191
WORK="$(mktemp -d /tmp/roster-bench.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --release --quiet --bin roster --example bench_seed
# The ceiling is built from its own directory, so this repository's .cargo/config.toml (our
# SQLite build flags) does not apply to it: it stays the stack as it comes.
(cd "$SHARED/ceiling" && CARGO_TARGET_DIR="$TARGET/ceiling" cargo build --release --quiet)
BIN="$TARGET/release/roster"; SEED="$TARGET/release/examples/bench_seed"
LOAD="$SHARED/load.sh"

wait_http() { for _ in $(seq 1 600); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "no answer from $1" >&2; return 1; }
field() { sed -n "s/.*\(^\| \)$1=\([0-9.]*\).*/\2/p"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  connections: $CONN  duration: ${DURATION}s"

# The ceiling, alone on the machine.
(cd "$SHARED/ceiling" && CEILING_DB="$WORK/ceiling.db" CEILING_TARGET="$TARGET/ceiling" exec ./run.sh "$CEILING_PORT") >"$WORK/ceiling.log" 2>&1 &
CPID=$!; PIDS+=("$CPID")
wait_http "http://127.0.0.1:$CEILING_PORT/json"
CEILING_LINE="$("$LOAD" "http://127.0.0.1:$CEILING_PORT/db" "$DURATION" "$CONN")"
CEILING_RPS="$(echo "$CEILING_LINE" | field rps)"
echo "ceiling GET /db: $CEILING_LINE"
kill "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true

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
  # The API key limit is raised out of the way, not switched off: its check stays on the path.
  DATABASE_URL="$url" ROSTER_DATA_DIR="$WORK" ROSTER_BIND="127.0.0.1:$PORT" ROSTER_DEMO=false ROSTER_PLATFORM_TOKEN="$PLATFORM" \
    ROSTER_DB_POOL_SIZE=32 ROSTER_RATE_LOGIN_PER_MINUTE=0 ROSTER_RATE_API_KEY_PER_MINUTE=4000000000 RUST_LOG=warn "$BIN" serve >"$WORK/$backend.log" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  wait_http "http://127.0.0.1:$PORT/healthz"
  "$SEED" "http://127.0.0.1:$PORT" "$PLATFORM" "$BIG" "$SMALL_TENANTS" "$SMALL_MEMBERS" >"$WORK/seed.env"
  # shellcheck disable=SC1091
  . "$WORK/seed.env"
  # Fresh planner statistics after the bulk load, as autovacuum would gather shortly after.
  if [ "$backend" = postgres ]; then psql "$url" -qc "ANALYZE" >/dev/null; fi
  local B="http://127.0.0.1:$PORT" AUTH="Authorization: Bearer $TOKEN"
  printf '{"email":"%s","password":"%s","tenant_id":"%s"}' "$OWNER_EMAIL" "$OWNER_PASSWORD" "$TENANT" >"$WORK/login.json"
  echo "seeded $BIG members in ${SEED_BIG_SECS}s; argon2id hash ${HASH_MS} ms alone, ${HASH_PARALLEL_MS} ms each with every core hashing"
  # An owner API key, to read the same member with as with the owner's access token.
  local key_secret
  key_secret="$(curl -s "$B/api/v1/tenants/$TENANT/api-keys" -H "$AUTH" -H 'Content-Type: application/json' \
    -d '{"name":"bench","kind":"api","role":"owner"}' | sed -n 's/.*"secret":"\([^"]*\)".*/\1/p')"
  [ -n "$key_secret" ] || { echo "could not create an API key" >&2; return 1; }
  local KEY_AUTH="Authorization: Bearer $key_secret"

  local login get get_key list cold create mixed_get mixed_login
  # SETTLE seconds between loads: requests a load left queued in the server (64 logins are
  # 1.5 s of hashing) finish before the next figure starts.
  login="$("$LOAD" "$B/api/v1/auth/login" "$DURATION" "$CONN" "Content-Type: application/json" "@$WORK/login.json")"
  echo "login:            $login"; sleep "$SETTLE"
  get="$("$LOAD" "$B/api/v1/tenants/$TENANT/users/$MEMBER" "$DURATION" "$CONN" "$AUTH")"
  echo "get member:       $get"; sleep "$SETTLE"
  # The same read with an API key, right after (same member, connections and duration).
  get_key="$("$LOAD" "$B/api/v1/tenants/$TENANT/users/$MEMBER" "$DURATION" "$CONN" "$KEY_AUTH")"
  echo "get member (API key): $get_key"; sleep "$SETTLE"
  list="$("$LOAD" "$B/api/v1/tenants/$TENANT/users?q=larsen&limit=50" "$DURATION" "$CONN" "$AUTH")"
  echo "list q=larsen (100k tenant, 1/60 of members match): $list"; sleep "$SETTLE"
  # The same search on a second instance without the in-memory list results: every request
  # reads all 1,667 matches' sort keys (what a first search, or one after a write, costs).
  DATABASE_URL="$url" ROSTER_DATA_DIR="$WORK" ROSTER_BIND="127.0.0.1:$COLD_PORT" ROSTER_PUBLIC_URL="http://127.0.0.1:$PORT" ROSTER_DEMO=false ROSTER_LIST_CACHE_ITEMS=0 \
    ROSTER_DB_POOL_SIZE=32 RUST_LOG=warn "$BIN" serve >"$WORK/$backend-cold.log" 2>&1 &
  local cold_pid=$!; PIDS+=("$cold_pid")
  wait_http "http://127.0.0.1:$COLD_PORT/healthz"
  cold="$("$LOAD" "http://127.0.0.1:$COLD_PORT/api/v1/tenants/$TENANT/users?q=larsen&limit=50" "$DURATION" "$CONN" "$AUTH")"
  kill "$cold_pid" 2>/dev/null || true; wait "$cold_pid" 2>/dev/null || true
  echo "  same, list cache off: $cold"; sleep "$SETTLE"
  create="$(PREFIX="$backend$$" wrk -t2 -c"$CONN" -d"${DURATION}s" --timeout 30s -s "$ROOT/bench/create.lua" -H "$AUTH" \
    "$B/api/v1/tenants/$TENANT/users" | sed -n 's/^RESULT //p')"
  echo "create member:    $create"; sleep "$SETTLE"
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
  exported="$(curl -s -o "$WORK/export.csv" -w '%{http_code} %{time_total}' -H "$AUTH" "$B/api/v1/tenants/$TENANT/users/export")"
  touch "$WORK/export.done"; wait "$sampler"
  echo "export $(($(wc -l <"$WORK/export.csv") - 1)) members (CSV, streamed): HTTP ${exported% *}, ${exported#* } s; server heap ${anon_before} MiB before, at most $(cat "$WORK/export.peak") MiB during"

  local cores bound
  cores="$(nproc)"
  bound="$(awk -v c="$cores" -v h="$HASH_MS" 'BEGIN{printf "%.1f", c*1000/h}')"
  echo "-- $backend summary"
  awk -v l="$(echo "$login" | field rps)" -v b="$bound" -v c="$cores" -v p="$HASH_PARALLEL_MS" \
    'BEGIN{printf "login: %.1f/s = %.0f%% of the argon2 bound (%s/s = cores / hash time); %.0f%% of what all cores hash at once (%.1f/s)\n", l, 100*l/b, b, 100*l/(c*1000/p), c*1000/p}'
  awk -v g="$(echo "$get" | field rps)" -v c="$CEILING_RPS" 'BEGIN{printf "get member: %.0f/s = %.0f%% of the ceiling GET /db (%.0f/s)\n", g, 100*g/c, c}'
  awk -v k="$(echo "$get_key" | field rps)" -v g="$(echo "$get" | field rps)" \
    'BEGIN{printf "get member (API key): %.0f/s = %.0f%% of the same read with the access token (%.0f/s; goal 90%%)\n", k, 100*k/g, g}'
  echo "list q p99: $(echo "$list" | field p99) ms ($(echo "$cold" | field p99) ms with the list cache off); get p99 under logins: $(echo "$mixed_get" | field p99) ms; create: $(echo "$create" | field rps)/s"
  echo "import of 10,000 rows: ${imported#* } s (target under 5 s on SQLite); export of $BIG+ members: ${exported#* } s"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  if [ "$backend" = postgres ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS roster_bench_$$ WITH (FORCE)" >/dev/null; fi
}

case "$WHICH" in
  sqlite) run_backend sqlite ;;
  postgres) run_backend postgres ;;
  both) run_backend sqlite; run_backend postgres ;;
  *) echo "usage: bench/run.sh [sqlite|postgres|both]" >&2; exit 2 ;;
esac
