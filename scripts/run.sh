#!/usr/bin/env bash
# Builds MiniVM (release) and serves it on http://localhost:3000 with the
# example labs. The README's run command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo leptos build --release
exec target/release/minivm serve "$@"
