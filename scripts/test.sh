#!/usr/bin/env bash
# Runs every test the project has: unit and integration tests (cargo), then
# the end-to-end tests (real server, real Chromium). The README's test
# command, and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

echo "== cargo test"
cargo test --workspace --exclude frontend --locked

echo "== cargo leptos build (debug)"
cargo leptos build

echo "== end-to-end tests"
MINIVM_BIN="$PWD/target/debug/minivm" node --test --test-concurrency=1 end2end/tests/
