#!/usr/bin/env bash
# Make PostgreSQL's server binaries (initdb, pg_ctl, postgres) available for the integration tests.
# Installs Debian's `postgresql` package only if no initdb is found; safe to run repeatedly.
# Starts no server: tests/integration/pg_server.py runs a throw-away cluster of its own.
set -euo pipefail

have_initdb() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null
}

if have_initdb; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "postgres.sh: PostgreSQL is missing; installing it needs root (apt-get install postgresql)" >&2
    exit 1
fi

# Keep the package from starting its default cluster (policy-rc.d exit 101 = "not allowed").
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi

# Quiet on success; on failure, show what apt said.
quietly() {
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        echo "postgres.sh: failed: $*" >&2
        exit 1
    fi
}
quietly apt-get update -qq
quietly env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql

if ! have_initdb; then
    echo "postgres.sh: installed postgresql but found no initdb under /usr/lib/postgresql/*/bin" >&2
    exit 1
fi
exit 0
