# shellcheck shell=bash
# What Roster's tests and checks need besides the Rust toolchain, and how each is installed.
# Sourced by ./test, tools/contract-check and .ci/run. Every step checks first and does nothing
# when what it installs is already there, so running it again costs a second.
#
# To add a dependency:
#   - Debian package: a line in DEBIAN_PACKAGES below: the package, then a command that succeeds
#     once what it brings is usable (so a tool installed another way is not installed again);
#   - npm package: `npm install --save-dev --save-exact NAME@VERSION` in tools/, then commit
#     tools/package.json and tools/package-lock.json (installed with `npm ci`);
#   - PyPI package: NAME==VERSION in tools/requirements.txt, with the new packages it pulls in
#     pinned as well (the file's header says how); installed into the venv $TOOLS_VENV.

ROSTER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="$ROSTER_ROOT/tools"
# The Python that tests and tools run on: Debian's (the email tests start /usr/bin/python3).
HOST_PYTHON=/usr/bin/python3
# Gitignored (under target/); `cargo clean` removes it and the next run makes it again.
TOOLS_VENV="${ROSTER_TOOLS_VENV:-$ROSTER_ROOT/target/tools-venv}"

# "package | probe": the probe is run with bash -c and succeeds when the package is not needed.
DEBIAN_PACKAGES=(
  "python3-aiosmtpd | $HOST_PYTHON -c 'import aiosmtpd'"           # email tests: the SMTP server they deliver to
  "python3-venv     | $HOST_PYTHON -c 'import ensurepip, venv'"    # the venv for tools/requirements.txt
  "nodejs           | command -v node"                             # spectral, redocly, openapi-typescript, playwright (tools/package.json)
  "npm              | command -v npm"
  "curl             | command -v curl"                             # tools/contract-check speaks HTTP with it
  "chromium         | test -x /usr/bin/chromium"                   # tests/api/cors.rs: a real page on another origin
  "xmlsec1          | command -v xmlsec1"                          # tools/saml_idp.py: pysaml2 signs with it
  # Building Roster: the `samael` crate (SAML) verifies XML signatures with libxmlsec1 over
  # libxml2, through bindings bindgen makes at build time (it needs libclang).
  "pkg-config       | command -v pkg-config"
  "libxml2-dev      | pkg-config --exists libxml-2.0"
  "libxmlsec1-dev   | pkg-config --exists xmlsec1 xmlsec1-openssl"
  "libclang-dev     | ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || test -n \"\${LIBCLANG_PATH:-}\""
)

deps_log() { echo "== $*" >&2; }
deps_die() { echo "error: $*" >&2; exit 1; }

# Runs a command as root: directly, or through sudo when there is one.
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else deps_die "'$*' needs root (or sudo)"
  fi
}

DEPS_APT_UPDATED=""
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [[ -z "$DEPS_APT_UPDATED" ]]; then
    as_root apt-get update -qq
    DEPS_APT_UPDATED=1
  fi
  as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Installs every Debian package of DEBIAN_PACKAGES whose probe fails, then checks again.
ensure_debian_packages() {
  local entry pkg probe missing=()
  for entry in "${DEBIAN_PACKAGES[@]}"; do
    pkg="$(echo "${entry%%|*}" | xargs)"; probe="${entry#*|}"
    bash -c "$probe" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  deps_log "installing Debian packages: ${missing[*]}"
  apt_install "${missing[@]}"
  for entry in "${DEBIAN_PACKAGES[@]}"; do
    pkg="$(echo "${entry%%|*}" | xargs)"; probe="${entry#*|}"
    bash -c "$probe" >/dev/null 2>&1 || deps_die "installed $pkg, but '$probe' still fails"
  done
}

deps_sha() { cat "$@" | sha256sum | cut -d' ' -f1; }

# npm packages of tools/package-lock.json, into tools/node_modules (npm ci, only when the lock
# file changed since the last install).
ensure_node_tools() {
  local major minor stamp="$TOOLS_DIR/node_modules/.roster-lock-sha256" want
  IFS=. read -r major minor _ < <(node -p 'process.versions.node')
  if (( major < 20 || (major == 20 && minor < 19) )); then
    deps_die "Node.js $(node --version) is too old for tools/package.json (@redocly/cli needs 20.19 or later)"
  fi
  want="$(deps_sha "$TOOLS_DIR/package-lock.json")"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return 0
  deps_log "installing npm packages (tools/package-lock.json)"
  (cd "$TOOLS_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
}

# PyPI packages of tools/requirements.txt, into the venv $TOOLS_VENV (made again whenever the
# requirements or the Python change).
ensure_python_tools() {
  local stamp="$TOOLS_VENV/.roster-requirements-sha256" want
  want="$(deps_sha "$TOOLS_DIR/requirements.txt" <(readlink -f "$HOST_PYTHON") <("$HOST_PYTHON" --version))"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return 0
  deps_log "installing PyPI packages (tools/requirements.txt) into ${TOOLS_VENV#"$ROSTER_ROOT"/}"
  "$HOST_PYTHON" -m venv --clear "$TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check --require-virtualenv \
    -r "$TOOLS_DIR/requirements.txt"
  echo "$want" >"$stamp"
}

# Everything above.
ensure_tools() {
  ensure_debian_packages
  ensure_node_tools
  ensure_python_tools
}

pg_local_ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

# For a PostgreSQL URL that names this machine (127.0.0.1 or localhost, port 5432): installs
# PostgreSQL when it is missing and starts the local cluster when nothing listens there.
# Other hosts are left alone.
ensure_local_postgres() {
  local url="$1"
  [[ "$url" =~ ^postgres(ql)?://([^@/]*@)?(127\.0\.0\.1|localhost)(:5432)?([/?]|$) ]] || return 0
  if ! command -v pg_isready >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1; then
    deps_log "installing PostgreSQL"
    apt_install postgresql
  fi
  if ! pg_local_ready; then
    deps_log "starting PostgreSQL"
    local v
    for v in $(ls /etc/postgresql 2>/dev/null); do
      as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
    for _ in $(seq 1 30); do pg_local_ready && break; sleep 1; done
  fi
  pg_local_ready || deps_die "PostgreSQL is not reachable on 127.0.0.1:5432"
}
