# shellcheck shell=bash
# temporal: the Temporal CLI's dev server (`temporal server start-dev`: a full Temporal server with
# SQLite), built with `go install` at a pinned version, serving gRPC on 127.0.0.1:17233.
#
# Why CLI v1.5.1: it is the newest release `go install mod@version` accepts; v1.6.0 and later carry
# `replace github.com/temporalio/cli/cliext => ./cliext` in go.mod, which `go install` refuses.
#
# The database is a file in the run dir: workflow histories survive `down` + `up` (a failed test's
# history can be read with `temporal workflow show`), and start-dev then writes nothing to
# ~/.config. Delete $WEFT_RUN_DIR/temporal/ while down to start from nothing.

TEMPORAL_CLI_MODULE="github.com/temporalio/cli/cmd/temporal@v1.5.1"
TEMPORAL_PORT=17233          # frontend gRPC
TEMPORAL_UI_PORT=17234       # only with WEFT_TEMPORAL_UI=1
TEMPORAL_HTTP_PORT=17235     # frontend HTTP API
TEMPORAL_METRICS_PORT=17236  # Prometheus /metrics
TEMPORAL_NAMESPACE=default
TEMPORAL_DIR="$WEFT_RUN_DIR/temporal"
TEMPORAL_LOG="$WEFT_LOG_DIR/temporal.log"

_temporal_bin() { printf '%s/temporal' "$WEFT_BIN_DIR"; }

# A real gRPC round trip: DescribeNamespace on the frontend.
_temporal_describe() {
  timeout 10 "$(_temporal_bin)" operator namespace describe --namespace "$TEMPORAL_NAMESPACE" \
    --address "127.0.0.1:$TEMPORAL_PORT" --command-timeout 5s --disable-config-file --disable-config-env
}

temporal_prebuild() {
  go_install_pinned "$TEMPORAL_CLI_MODULE" temporal
}

temporal_status() {
  pid_alive temporal && _temporal_describe
}

temporal_up() {
  temporal_prebuild
  if pid_alive temporal; then
    wait_started temporal "$TEMPORAL_LOG" 60 "Temporal DescribeNamespace on 127.0.0.1:$TEMPORAL_PORT" _temporal_describe
    return 0
  fi
  local p
  for p in "$TEMPORAL_PORT" "$TEMPORAL_HTTP_PORT" "$TEMPORAL_METRICS_PORT"; do
    if port_open "$p"; then
      die "port 127.0.0.1:$p is taken by a process that scripts/services did not start (see: ss -ltnp 'sport = :$p')"
    fi
  done
  local -a ui=(--headless)
  if [[ "${WEFT_TEMPORAL_UI:-0}" == 1 ]]; then ui=(--ui-ip 127.0.0.1 --ui-port "$TEMPORAL_UI_PORT"); fi
  mkdir -p "$TEMPORAL_DIR" "$WEFT_LOG_DIR"
  printf '\n=== %s scripts/services up temporal ===\n' "$(date -Is)" >>"$TEMPORAL_LOG"
  # Every port is given explicitly: left alone, the HTTP and metrics ports are random.
  start_bg temporal "$TEMPORAL_LOG" "$(_temporal_bin)" server start-dev "${ui[@]}" \
    --ip 127.0.0.1 --port "$TEMPORAL_PORT" \
    --http-port "$TEMPORAL_HTTP_PORT" --metrics-port "$TEMPORAL_METRICS_PORT" \
    --db-filename "$TEMPORAL_DIR/temporal.db" \
    --namespace "$TEMPORAL_NAMESPACE" \
    --log-level warn --log-format json
  wait_started temporal "$TEMPORAL_LOG" 120 "Temporal DescribeNamespace on 127.0.0.1:$TEMPORAL_PORT" _temporal_describe
}

temporal_down() {
  stop_pid temporal TERM 30
}

temporal_address() { printf '127.0.0.1:%s' "$TEMPORAL_PORT"; }

temporal_env() {
  printf 'WEFT_TEMPORAL_ADDRESS=127.0.0.1:%s\nWEFT_TEMPORAL_NAMESPACE=%s\n' "$TEMPORAL_PORT" "$TEMPORAL_NAMESPACE"
  # The server's own CLI, for tests that drive weft as operators do (`temporal workflow stack`).
  printf 'WEFT_HARNESS_TEMPORAL_CLI=%s\n' "$(_temporal_bin)"
}
