#!/usr/bin/env bash
# The tools the executed documentation uses as a reader's shell would (tests/docs): curl and jq,
# from Debian, installed only if missing.
set -euo pipefail
missing=()
for tool in curl jq; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "doctools.sh: ${missing[*]} missing; installing needs root (apt-get install ${missing[*]})" >&2
    exit 1
fi
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
