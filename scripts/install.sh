#!/usr/bin/env bash
# Installs every tool the project needs, skipping what is already present.
# Safe to run again at any time. On a brand-new machine it takes about 30 minutes,
# most of it compiling cargo-leptos.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# Prerequisites first: each one missing or too old is named with how to get it, and
# nothing is installed until all are there.
at_least() { # <have> <need>: dotted versions
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]
}
problems=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null \
    || problems+=("root or sudo: apt-get installs MariaDB, Chromium and HAProxy (run as root, or install sudo)")
fi
if ! command -v rustup >/dev/null || ! command -v cargo >/dev/null; then
  problems+=("rustup and cargo: https://rustup.rs, then 'rustup default stable'")
else
  rustc_have="$(rustc --version 2>/dev/null | awk '{print $2}')"
  at_least "${rustc_have:-0}" "$RUST_MIN_VERSION" \
    || problems+=("Rust $RUST_MIN_VERSION or newer (have ${rustc_have:-none}): 'rustup update stable'")
fi
if ! command -v go >/dev/null; then
  problems+=("Go $GO_MIN_VERSION or newer, to build FerretDB and Mailpit from their modules: https://go.dev/dl")
else
  go_have="$(go env GOVERSION 2>/dev/null | sed 's/^go//')"
  at_least "${go_have:-0}" "$GO_MIN_VERSION" \
    || problems+=("Go $GO_MIN_VERSION or newer (have ${go_have:-unknown}): https://go.dev/dl")
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  problems+=("Node $NODE_MIN_VERSION or newer with npm, for Playwright: https://nodejs.org or 'apt-get install nodejs npm'")
else
  node_have="$(node --version | sed 's/^v//')"
  at_least "$node_have" "$NODE_MIN_VERSION" \
    || problems+=("Node $NODE_MIN_VERSION or newer (have $node_have): https://nodejs.org")
fi
command -v apt-get >/dev/null || problems+=("apt-get: the scripts install system packages on Debian or Ubuntu")
if [ ${#problems[@]} -gt 0 ]; then
  printf '\033[31merror:\033[0m missing before anything can be installed:\n' >&2
  printf '  - %s\n' "${problems[@]}" >&2
  exit 1
fi
# apt-get as root, through sudo otherwise.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Whether a command's output contains a text. The output is read whole first: with
# pipefail, `cmd | grep -q` fails whenever grep quits early and cmd dies of SIGPIPE,
# which made this script rebuild FerretDB now and then although it was current.
prints() { # <text> <command...>
  local out
  out="$("${@:2}" 2>/dev/null)" || true
  [[ "$out" == *"$1"* ]]
}

need_apt=()
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
command -v openssl >/dev/null || need_apt+=(openssl)
# The benchmarks and scripts use these.
command -v wrk >/dev/null || need_apt+=(wrk)
command -v curl >/dev/null || need_apt+=(curl)
command -v python3 >/dev/null || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt: installing ${need_apt[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! prints wasm32-unknown-unknown rustup target list --installed; then
  log "rustup: adding wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
for component in rustfmt clippy; do
  if ! prints "$component" rustup component list --installed; then
    log "rustup: adding $component"
    rustup component add "$component"
  fi
done

if ! prints "$CARGO_LEPTOS_VERSION" cargo leptos --version; then
  log "cargo: installing cargo-leptos $CARGO_LEPTOS_VERSION (about 22 minutes)"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
fi

wbg="$(wasm_bindgen_version)"
[ -n "$wbg" ] || die "cannot read the wasm-bindgen version from Cargo.lock"
if ! prints " $wbg" wasm-bindgen --version; then
  # Not --locked: a version its lock file names cannot be downloaded from the registry.
  log "cargo: installing wasm-bindgen-cli $wbg (about 4 minutes)"
  cargo install wasm-bindgen-cli --version "$wbg" --force
fi

if ! prints " $TWIGGY_VERSION" twiggy --version; then
  log "cargo: installing twiggy $TWIGGY_VERSION, for scripts/bench wasm-profile (about 2 minutes)"
  cargo install twiggy --version "$TWIGGY_VERSION" --locked
fi

if ! prints "version: $FERRETDB_VERSION" ferretdb --version; then
  # `go install …@version` fails here: the module proxy refuses the version list it
  # reads for deprecation notices. So fetch the exact module version, and build it
  # with the version file its own build tooling would generate.
  log "go: building FerretDB $FERRETDB_VERSION"
  work="$(mktemp -d)"
  (
    cd "$work"
    go mod init ferretdb-build >/dev/null 2>&1
    src="$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
    [ -d "$src" ] || die "go mod download of FerretDB $FERRETDB_VERSION failed"
    cp -r "$src" ferretdb && chmod -R u+w ferretdb
    echo "$FERRETDB_VERSION" > ferretdb/build/version/version.txt
    cd ferretdb && mkdir -p "$GOBIN_DIR" && go build -o "$GOBIN_DIR/ferretdb" ./cmd/ferretdb
  )
  rm -rf "$work"
fi

# Mailpit catches the portal's mail locally (tests read its HTTP API). Built like
# FerretDB, from the exact module version; its web UI bundle is not in the module and
# its npm dependencies are not all served here, so the API is what runs.
if [ "$(cat "$GOBIN_DIR/.mailpit-version" 2>/dev/null)" != "$MAILPIT_VERSION" ] || [ ! -x "$GOBIN_DIR/mailpit" ]; then
  log "go: building Mailpit $MAILPIT_VERSION"
  work="$(mktemp -d)"
  (
    cd "$work"
    go mod init mailpit-build >/dev/null 2>&1
    src="$(go mod download -json "github.com/axllent/mailpit@$MAILPIT_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
    [ -d "$src" ] || die "go mod download of Mailpit $MAILPIT_VERSION failed"
    cp -r "$src" mailpit && chmod -R u+w mailpit
    cd mailpit && mkdir -p "$GOBIN_DIR" && go build -o "$GOBIN_DIR/mailpit" .
  )
  rm -rf "$work"
  echo "$MAILPIT_VERSION" >"$GOBIN_DIR/.mailpit-version"
fi

if [ ! -x "$ROOT/end2end/node_modules/.bin/playwright" ] || [ ! -x "$ROOT/end2end/node_modules/.bin/wasm-opt" ] \
   || [ "$ROOT/end2end/package-lock.json" -nt "$ROOT/end2end/node_modules/.package-lock.json" ]; then
  log "npm: installing end2end dependencies (Playwright, binaryen's wasm-opt)"
  (cd "$ROOT/end2end" && npm ci --no-audit --no-fund --loglevel=error)
fi

log "tools ready: $(cargo leptos --version), wasm-bindgen $wbg, FerretDB $FERRETDB_VERSION, Mailpit $MAILPIT_VERSION, $(haproxy -v | head -1 | cut -d' ' -f1-3), wasm-opt $(wasm-opt --version | awk '{print $3}')"
