#!/usr/bin/env bash
# The browser the web-page test drives: Debian's chromium, found or installed.
#
# Playwright's own browser download needs the internet; Debian's package comes
# from the distribution's mirror, which build machines can reach. Override the
# binary with CARDD_CHROMIUM=/path/to/chromium.
set -euo pipefail

log() { printf '[browser] %s\n' "$*"; }

if [[ -n "${CARDD_CHROMIUM:-}" && -x "${CARDD_CHROMIUM}" ]]; then
    log "using $CARDD_CHROMIUM"
    exit 0
fi
for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null 2>&1; then
        log "using $(command -v "$candidate")"
        exit 0
    fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    log "ERROR: no chromium found and no apt-get to install it; install Chromium and set CARDD_CHROMIUM" >&2
    exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { log "ERROR: installing chromium needs root or sudo" >&2; exit 1; }
    sudo=(sudo)
fi
log "installing Debian's chromium (once per machine, about a minute)"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
log "using $(command -v chromium)"
