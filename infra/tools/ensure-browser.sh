#!/usr/bin/env bash
# The dashboard's browser test drives Debian's headless Chromium (/usr/bin/chromium). `make test`
# installs it when it is missing: with apt-get as root, or through sudo when that needs no password.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "make test needs Chromium at /usr/bin/chromium (Debian/Ubuntu: apt-get install chromium)" >&2
  exit 1
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "make test needs Chromium: run 'sudo apt-get install chromium' once" >&2
    exit 1
  fi
fi
echo "installing Chromium for the browser test (apt-get install chromium)..."
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq chromium >/dev/null
test -x /usr/bin/chromium
