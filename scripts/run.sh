#!/usr/bin/env bash
# Builds MiniVM (release) and its default base image when missing, then
# serves http://localhost:3000 with the example labs. The README's run command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo xtask build --release
# The default lab image, built once from Debian packages (about 20 s).
target/release/minivm image build --if-missing
exec target/release/minivm serve "$@"
