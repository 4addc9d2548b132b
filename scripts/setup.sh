#!/usr/bin/env bash
# Installs everything MiniVM needs to build, run and test, idempotently: a
# second run installs nothing. Called by scripts/run.sh and scripts/test.sh.
#
#   Debian packages   QEMU, Chromium (browser tests), image-building tools
#   rustup target     wasm32-unknown-unknown
#   npm packages      npm ci (cytoscape, esbuild, binaryen's wasm-opt, playwright-core,
#                     typescript and @kubevirt-ui-ext/kubevirt-api to check exported manifests)
#   with `test`       leptosfmt (pinned), which the test command checks the
#                     editor's view! markup with
#
# No cargo tool is installed: the web build is `cargo xtask build` (xtask/),
# whose wasm-bindgen is a library pinned by Cargo.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

LEPTOSFMT_VERSION=0.1.33

APT_PACKAGES=(
  chromium                                   # end-to-end tests (never a downloaded browser)
  qemu-system-x86 qemu-utils                 # the VMs and their qcow2 overlays
  iproute2 procps curl iputils-ping          # ip netns for tests and doctor; ps, curl and ping in tests
  nftables                                   # link impairments (loss, rate) at a TAP's ingress
  libpcap-dev tcpdump                        # packet capture (libpcap); tcpdump reads captures in tests
  mtools syslinux syslinux-common dosfstools e2fsprogs cpio fdisk binutils  # base image build
  nodejs npm                                 # front-end bundle and browser-test driver
  skopeo genisoimage                         # KubeVirt export tests: the OCI archive read by skopeo, a NoCloud ISO as KubeVirt makes it
)

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

export PATH="$HOME/.cargo/bin:$PATH"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  # A machine whose Node.js came from elsewhere (nodesource) has npm already.
  if [[ $p == nodejs || $p == npm ]] && command -v node >/dev/null && command -v npm >/dev/null; then
    continue
  fi
  installed "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_target=()
  # Debian 12 machines here carry qemu-utils from bookworm-backports; the
  # matching qemu-system-x86 comes from there too.
  if grep -q 'VERSION_CODENAME=bookworm' /etc/os-release; then
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      say "adding the bookworm-backports source"
      cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    apt_target=(-t bookworm-backports)
  fi
  apt-get update -qq
  apt-get install -y -qq "${apt_target[@]}" "${missing[@]}" >/dev/null
fi

# `minivm image build` downloads Debian packages: it needs package lists
# that know the kernel metapackage.
kernel_policy=$(apt-cache policy linux-image-cloud-amd64 2>/dev/null || true)
if [[ $kernel_policy != *"Candidate: "[0-9]* ]]; then
  say "refreshing the Debian package lists (apt-get update)"
  apt-get update -qq
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the rustup target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

stamp=node_modules/.minivm-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi
if [[ ${1:-} == test && "$(leptosfmt --version 2>/dev/null)" != "leptosfmt $LEPTOSFMT_VERSION" ]]; then
  say "installing leptosfmt $LEPTOSFMT_VERSION (about 3 minutes on 2 cores, once per machine)"
  cargo install leptosfmt --version "$LEPTOSFMT_VERSION" --locked
fi
say "all tools present"
