#!/usr/bin/env bash
# Runs every test the project has: unit and integration tests (cargo), then
# the end-to-end tests (real server, real Chromium). The README's test
# command, and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
export PATH="$HOME/.cargo/bin:$PATH"

# The built-in image is built once for the whole run and shared by every
# test that boots VMs (hard links; base images are read-only).
MINIVM_TEST_IMAGE_CACHE=$(mktemp -d)
export MINIVM_TEST_IMAGE_CACHE
chmod 755 "$MINIVM_TEST_IMAGE_CACHE"
# So are the warm images made from it: a VM shape boots cold once per run,
# and every other VM of that shape, in any test, starts warm.
export MINIVM_WARM_DIR="$MINIVM_TEST_IMAGE_CACHE/warm"
cleanup_images() { rm -rf "$MINIVM_TEST_IMAGE_CACHE"; }
trap cleanup_images EXIT

step_start=$SECONDS
step() {
  echo "== $1 (after $((SECONDS - step_start)) s)"
}

step "formatting (rustfmt, leptosfmt for view! markup)"
cargo fmt --all --check
leptosfmt --check app/src >/dev/null || { leptosfmt --check app/src; echo "run: leptosfmt app/src"; exit 1; }

step "cargo test"
cargo test --workspace --exclude frontend --locked

step "cargo xtask build (debug)"
cargo xtask build

step "end-to-end tests"
MINIVM_BIN="$PWD/target/debug/minivm" node --test --test-concurrency=1 end2end/tests/

step "the run command: release build, default image, serving"
# scripts/run.sh as a user runs it, on a state directory of its own and a
# free port; stopped by its PID once it answers.
smoke_state=$(mktemp -d)
chmod 755 "$smoke_state"
smoke_log=$(mktemp)
MINIVM_STATE_DIR="$smoke_state" scripts/run.sh --bind 127.0.0.1:0 >"$smoke_log" 2>&1 &
smoke_pid=$!
cleanup_smoke() { kill "$smoke_pid" 2>/dev/null || true; wait "$smoke_pid" 2>/dev/null || true; rm -rf "$smoke_state" "$smoke_log"; cleanup_images; }
trap cleanup_smoke EXIT
url=""
for _ in $(seq 1 1800); do
  url=$(grep -o 'listening on http://[0-9.:]*' "$smoke_log" | head -1 | cut -d' ' -f3 || true)
  [ -n "$url" ] && break
  kill -0 "$smoke_pid" 2>/dev/null || { cat "$smoke_log"; echo "scripts/run.sh exited early"; exit 1; }
  sleep 1
done
[ -n "$url" ] || { cat "$smoke_log"; echo "scripts/run.sh did not serve within 30 minutes"; exit 1; }
[ "$(curl -fsS "$url/healthz")" = ok ]
# The app wants its token, on loopback too: refused without it, opened
# through the login URL that run.sh printed (a cookie, then the page).
login=$(grep -o 'open http://[0-9.:]*/?token=[0-9A-Za-z_-]*' "$smoke_log" | head -1 | cut -d' ' -f2 || true)
[ -n "$login" ] || { cat "$smoke_log"; echo "scripts/run.sh printed no login URL"; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/?lab=router")" = 401 ]
jar=$(mktemp)
# Whole answers are read before grep looks at them: `grep -q` stops at the
# first match, and the writer's SIGPIPE would fail the pipeline (pipefail).
page=$(curl -fsSL -c "$jar" -b "$jar" "$login&lab=router")
rm -f "$jar"
grep -q 'data-lab="router"' <<<"$page"
images=$(target/release/minivm --state-dir "$smoke_state" image list)
grep -q '^tiny' <<<"$images"
grep -q '^frr' <<<"$images"
echo "scripts/run.sh serves $url with the default lab and image"
step "done"
