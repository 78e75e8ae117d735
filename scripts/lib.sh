# Shared settings for the project's scripts. Source it; do not run it.
# Every value can be overridden from the environment.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

export PORTAL_DATA_DIR="${PORTAL_DATA_DIR:-$ROOT/.data}"
export PORTAL_MYSQL_PORT="${PORTAL_MYSQL_PORT:-3307}"
export PORTAL_MONGO_PORT="${PORTAL_MONGO_PORT:-27018}"
export PORTAL_FERRET_DEBUG_PORT="${PORTAL_FERRET_DEBUG_PORT:-8089}"
export PORTAL_SMTP_PORT="${PORTAL_SMTP_PORT:-1025}"
export PORTAL_MAILPIT_PORT="${PORTAL_MAILPIT_PORT:-8025}"

FERRETDB_VERSION="v1.24.2"
MAILPIT_VERSION="v1.33.1"
CARGO_LEPTOS_VERSION="0.3.10"
TWIGGY_VERSION="0.8.0"
BINARYEN_VERSION="132.0.0"
# The oldest toolchains the project is checked with: Cargo's rust-version, Mailpit's
# go.mod (FerretDB's asks less), and the Node Playwright's packages run on here.
RUST_MIN_VERSION="1.95"
GO_MIN_VERSION="1.26"
NODE_MIN_VERSION="20"

GOBIN_DIR="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"
export PATH="$HOME/.cargo/bin:$GOBIN_DIR:$ROOT/end2end/node_modules/.bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# The wasm-bindgen version cargo-leptos must match, read from Cargo.lock.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}
