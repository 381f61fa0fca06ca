#!/usr/bin/env bash
# Installs headless Chromium from Debian packages for the dashboard's browser test, unless it
# is already there. Playwright drives this binary: its own browser downloads are not used.
set -euo pipefail

chromium=/usr/bin/chromium
[ -x "$chromium" ] && exit 0

log() { printf '[browser] %s\n' "$*" >&2; }
# CI runs as root; a developer's machine goes through sudo.
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
install() {
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends chromium
}

log "installing chromium"
# A fresh machine may have no package lists yet; refreshing them costs time, so only on failure.
if ! install; then
  log "refreshing the package lists and retrying"
  "${as_root[@]}" apt-get update -q
  install
fi
[ -x "$chromium" ] || { log "chromium is still missing at $chromium"; exit 1; }
