#!/usr/bin/env bash
# Debian packages Berth's tests and benchmarks use as real peers. Installs only what is missing.
set -euo pipefail
PACKAGES=(containerd runc crun docker-registry skopeo umoci busybox-static hyperfine containernetworking-plugins
  protobuf-compiler util-linux iproute2 git ca-certificates zstd gzip tar coreutils apache2-utils
  gcc make libc6-dev)  # gcc/make/libc6-dev: @berth/shim's native launcher and N-API addon
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts the packaged containerd and registry as services; Berth's tests run private instances instead.
for svc in containerd docker-registry; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then systemctl stop "$svc" || true; fi
done
