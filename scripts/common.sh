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

# CI builds from a clean clone once: incremental compilation's caches would only take disk
# (gigabytes across the test binaries) and time.
if [ "${CI:-}" = true ]; then
    export CARGO_INCREMENTAL=0
fi

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

# Reports the free disk where the build goes (a full disk fails a build late and obscurely).
hy_disk() {
    local free target
    free=$(df -h --output=avail,size "$HY_ROOT" | awk 'NR == 2 { print $1 " free of " $2 }')
    target=$(du -sh "$HY_ROOT/target" 2>/dev/null | cut -f1 || true)
    hy_log "disk: $free; target/: ${target:-none}"
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
