#!/usr/bin/env bash
# Redis keeps its data across `scripts/services down redis && scripts/services up redis`
# (append-only file in the run dir). Run through scripts/with-services --need redis.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${WEFT_REDIS_PASSWORD:?run me through scripts/with-services --need redis}"
export REDISCLI_AUTH="$WEFT_REDIS_PASSWORD"
rcli() { timeout 10 redis-cli -h "$WEFT_REDIS_HOST" -p "$WEFT_REDIS_PORT" "$@"; }
fail() { echo "redis persistence: FAIL: $*" >&2; exit 1; }

key="weft:harness:persist:$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
trap 'rcli DEL "$key" >/dev/null 2>&1 || true' EXIT
rcli RPUSH "$key" one two three >/dev/null
[[ "$(rcli LRANGE "$key" 0 -1 | paste -sd,)" == one,two,three ]] || fail "the list was not written"
pid_before=$(<"$WEFT_RUN_DIR/redis.pid")

"$root/scripts/services" down redis
"$root/scripts/services" up redis >/dev/null

pid_after=$(<"$WEFT_RUN_DIR/redis.pid")
[[ "$pid_before" != "$pid_after" ]] || fail "redis was not restarted (pid $pid_before both times)"
got=$(rcli LRANGE "$key" 0 -1 | paste -sd,)
[[ "$got" == one,two,three ]] || fail "after a restart the list is '$got', expected 'one,two,three'"
echo "redis persistence: OK ($key survived a restart, pid $pid_before -> $pid_after)"
