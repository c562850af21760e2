#!/usr/bin/env bash
# Make Debian's headless Chromium available for the portal's browser tests (tests/e2e/), with a
# CJK font so the screenshots show Chinese text. Installs the Debian packages only if missing;
# Playwright drives /usr/bin/chromium and never downloads a browser of its own.
set -euo pipefail

have_all() {
    [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk"
}

if have_all; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "chromium.sh: chromium or a CJK font is missing; installing them needs root" \
        "(apt-get install chromium fonts-wqy-microhei)" >&2
    exit 1
fi

quietly() {
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        echo "chromium.sh: failed: $*" >&2
        exit 1
    fi
}
quietly apt-get update -qq
quietly env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-wqy-microhei fontconfig

if [ ! -x /usr/bin/chromium ]; then
    echo "chromium.sh: installed chromium but found no /usr/bin/chromium" >&2
    exit 1
fi
exit 0
