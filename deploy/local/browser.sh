#!/usr/bin/env bash
# A headless browser for the dashboard's tests: Debian's `chromium` (apt), driven by Playwright
# (the `playwright` Python package, from the dev extras) through its executable path. No
# Playwright browser download: those come from a CDN this project's machines cannot reach.
#   bash deploy/local/browser.sh          install chromium if missing, print its path
#   bash deploy/local/browser.sh path     print its path only (exit 1 if not installed)
# EARSHOT_CHROMIUM=/path/to/chrome skips the look-up (any Chromium/Chrome build works).
set -euo pipefail

find_chromium() {
  if [[ -n ${EARSHOT_CHROMIUM:-} ]]; then
    [[ -x $EARSHOT_CHROMIUM ]] && { echo "$EARSHOT_CHROMIUM"; return 0; }
    echo "EARSHOT_CHROMIUM=$EARSHOT_CHROMIUM is not an executable" >&2; return 1
  fi
  local candidate
  for candidate in chromium chromium-browser google-chrome-stable google-chrome; do
    command -v "$candidate" >/dev/null 2>&1 && { command -v "$candidate"; return 0; }
  done
  return 1
}

if find_chromium 2>/dev/null; then exit 0; fi
[[ ${1:-} == path ]] && exit 1

if ! command -v apt-get >/dev/null 2>&1; then
  echo "no chromium found and no apt-get to install it: install Chromium or Chrome and set EARSHOT_CHROMIUM" >&2
  exit 1
fi
as_root=()
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "installing chromium needs root (or sudo): apt-get install chromium" >&2; exit 1; }
  as_root=(sudo -n)
fi
echo "installing Debian's chromium (apt-get, about 100 MB; once per machine)" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq >&2
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
find_chromium
