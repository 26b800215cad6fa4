# Sourced by scripts/setup, scripts/test, scripts/serve and .ci/run; not run on its own.
# shellcheck shell=bash

HY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export HY_ROOT

# The one trunk that builds on the pinned toolchain (0.22 needs rustc 1.96).
export HY_TRUNK_VERSION=0.21.14

# cargo-fuzz for scripts/fuzz (the fuzz/ crate's libFuzzer targets).
export HY_CARGO_FUZZ_VERSION=0.13.2

# cargo-installed tools first, then the project's own wasm-opt (npm binaryen 132) ahead of any
# older system binaryen.
export PATH="$HY_ROOT/web/node_modules/.bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# `cargo test --target wasm32-unknown-unknown` runs its test binaries with wasm-bindgen's
# runner, which drives headless Chromium through chromedriver.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"

hy_log() {
    printf '\033[1m[%s]\033[0m %s\n' "$(basename "$0")" "$*" >&2
}

# Runs "$@" and reports how long it took.
hy_step() {
    local name=$1
    shift
    local start=$SECONDS
    hy_log "▶ $name"
    "$@"
    hy_log "✔ $name ($((SECONDS - start)) s)"
}

# The wasm-bindgen version in Cargo.lock: the CLI must match it exactly.
hy_wasm_bindgen_version() {
    awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' \
        "$HY_ROOT/Cargo.lock"
}

# Builds the H5 client into dist/ (release: size-optimised, wasm-opt'ed).
hy_build_web() {
    (cd "$HY_ROOT" && timeout --kill-after=30 900 trunk build --release)
}
