#!/usr/bin/env bash
# Make the real Apache Kafka cluster of the integration and fault suites available: a Java 17+
# runtime and Maven (Debian's packages, installed only if missing), then the broker's jars, fetched
# from Maven Central into the cache outside the work tree (scripts/kafka_cluster.py; a no-op once
# fetched). Starts no broker: the tests start their own 3-node cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

java_ok() {
    command -v java >/dev/null || return 1
    local major
    major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
    [ "${major%%.*}" -ge 17 ] 2>/dev/null
}

missing=()
java_ok || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "kafka.sh: missing ${missing[*]}; installing needs root (apt-get install ${missing[*]})" >&2
        exit 1
    fi
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
began=$(date +%s)
python3 scripts/kafka_cluster.py fetch >/dev/null
echo "kafka.sh: Apache Kafka jars ready in $(( $(date +%s) - began )) s" >&2
