#!/usr/bin/env bash
# Sets up Berth on a fresh Debian machine with Node (run as root) and starts berthd on its embedded defaults:
# root /var/lib/berth, state /run/berth, socket /run/berth/berth.sock. Then talks to it with berth and ctr.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
if [ "$(pnpm --version 2>/dev/null || true)" != "10.34.8" ]; then npm install -g pnpm@10.34.8 >/dev/null; fi
pnpm install --frozen-lockfile
pnpm turbo run build
# Berth's shim, found on PATH as containerd finds shims (runtime io.containerd.berth.v2).
ln -sf "$PWD/packages/shim/native/build/containerd-shim-berth-v2" /usr/local/bin/containerd-shim-berth-v2

SOCK=/run/berth/berth.sock
if [ -S "$SOCK" ] && node_modules/.bin/berth -a "$SOCK" version >/dev/null 2>&1; then
  echo "berthd is already running on $SOCK"
else
  mkdir -p /run/berth
  nohup node_modules/.bin/berthd >/run/berth/berthd.log 2>&1 &
  echo $! >/run/berth/berthd.pid
  for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
  echo "berthd started (pid $(cat /run/berth/berthd.pid), log /run/berth/berthd.log)"
fi

node_modules/.bin/berth version
ctr -a "$SOCK" namespaces create quickstart 2>/dev/null || true
ctr -a "$SOCK" namespaces label quickstart hello=world
ctr -a "$SOCK" namespaces ls

# A real container: a busybox image built from this machine's busybox-static, imported (and unpacked) by berth,
# then run. Skipped, with a note, where berthd cannot run containers (no Tasks service) or busybox is missing.
if [ -x /bin/busybox ]; then
  IMG=/run/berth/busybox-quickstart.tar
  node scripts/build-busybox-image.mjs "$IMG" docker.io/library/busybox:quickstart >/dev/null
  node_modules/.bin/berth -a "$SOCK" -n quickstart images import "$IMG"
  if node_modules/.bin/berth -a "$SOCK" plugins ls 2>/dev/null | grep -Eq '^io\.containerd\.grpc\.v1 +tasks .* ok'; then
    node_modules/.bin/berth -a "$SOCK" -n quickstart run --rm --runtime io.containerd.berth.v2 \
      docker.io/library/busybox:quickstart quickstart-hello echo hello from berth
  else
    echo "berthd cannot run containers yet (no Tasks service): skipping berth run"
  fi
else
  echo "no /bin/busybox (apt-get install busybox-static): skipping the container run"
fi
echo
echo "stop it with: kill \$(cat /run/berth/berthd.pid)"
