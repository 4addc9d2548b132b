#!/usr/bin/env bash
# Builds MiniVM (release) and its built-in base images when missing, then
# serves http://localhost:3000 with the example labs. The README's run command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo xtask build --release
# The built-in images, built once from Debian packages: tiny (the default
# labs') and frr (the routing example's), about 10 s each with the packages
# downloaded.
target/release/minivm image build --if-missing
target/release/minivm image build frr --if-missing
exec target/release/minivm serve "$@"
