# shellcheck shell=bash
# hatchet: the Hatchet engine (gRPC on 127.0.0.1:17077), built from Hatchet's Go module at a pinned
# version, with the PostgreSQL-backed message queue (no RabbitMQ) in the `hatchet` database of our
# postgres service. Details, measured timings and protocol notes: docs/hatchet-engine.md.
#
# Only `hatchet-engine` runs: workflow registration, workers, triggers and run results are all gRPC.
# Hatchet's REST API server (hatchet-api) and the engine's healthcheck server are NOT started: both
# listen on every interface (":PORT", no bind-address setting at this version), and we serve on
# loopback only. Readiness is a real authenticated gRPC call instead (Dispatcher/GetVersion over h2c).
#
# Files, all under $WEFT_RUN_DIR/hatchet (mode 700):
#   keys/            Tink keysets (master + JWT ES256), made locally by `hatchet-admin keyset create-local-keys`
#   cookie-secrets   two 32-character secrets (the engine's config loader insists on them)
#   token            the tenant API token (a JWT, mode 600) — only its path is ever printed
#   engine.env       the engine's configuration (KEY=VALUE, mode 600: has the database password and
#                    the cookie secrets); config/ is an empty config dir (everything comes from env)

HATCHET_VERSION=v0.104.7
HATCHET_MODULE=github.com/hatchet-dev/hatchet
HATCHET_BINARIES=(hatchet-engine hatchet-migrate hatchet-admin)
HATCHET_GRPC_PORT=17077
# Written into tokens as `server_url` and checked as their issuer/audience. Nothing listens here
# (see above); it is the address hatchet-api would get if it were ever run (HATCHET_API_PORT).
HATCHET_API_PORT=18080
HATCHET_TENANT_ID=707d0855-80ab-4e1f-a156-f1c4546cbf52   # the seed's default tenant (slug "default")
HATCHET_DIR="$WEFT_RUN_DIR/hatchet"
HATCHET_LOG="$WEFT_LOG_DIR/hatchet.log"
HATCHET_TOKEN_FILE="$HATCHET_DIR/token"

_hatchet_bin() { printf '%s/%s' "$WEFT_BIN_DIR" "$1"; }
_hatchet_stamp_want() { printf '%s@%s ldflags=-X main.Version=%s trimpath' "$HATCHET_MODULE" "$HATCHET_VERSION" "$HATCHET_VERSION"; }

_hatchet_built() {
  local b stamp="$WEFT_BIN_DIR/hatchet.version"
  for b in "${HATCHET_BINARIES[@]}"; do [[ -x "$(_hatchet_bin "$b")" ]] || return 1; done
  [[ -f "$stamp" && "$(<"$stamp")" == "$(_hatchet_stamp_want)" ]]
}

# Build the three binaries from the module's own go.mod/go.sum (-mod=readonly), in the module cache.
# Not `go install $HATCHET_MODULE/cmd/...@$HATCHET_VERSION` (common.sh's go_install_pinned): that form
# also asks the module proxy for the module's version list (to report deprecation) and fails when
# the proxy refuses the list, as the one this project reaches does (403) for this module.
_hatchet_build() {
  _hatchet_built && return 0
  command -v go >/dev/null || die "Go is not installed (needed to build the Hatchet engine $HATCHET_VERSION)"
  mkdir -p "$WEFT_BIN_DIR" "$WEFT_LOG_DIR"
  local buildlog="$WEFT_LOG_DIR/build-hatchet.log" t0 dir tmp b
  local -a pkgs=()
  t0=$(now_s)
  log "building the Hatchet engine $HATCHET_VERSION (${HATCHET_BINARIES[*]}) — 10–15 min on a cold Go cache with 2 cores; log: $buildlog"
  rm -f "$WEFT_BIN_DIR/hatchet.version"
  tmp=$(mktemp -d)
  # Outside any module, so the download is exactly $HATCHET_MODULE@$HATCHET_VERSION.
  if ! dir=$(cd "$tmp" && GOFLAGS='' go mod download -json "$HATCHET_MODULE@$HATCHET_VERSION" 2>>"$buildlog" |
             sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'); then
    rm -rf "$tmp"
    fail_with_log hatchet "$buildlog" "go mod download $HATCHET_MODULE@$HATCHET_VERSION failed"
  fi
  rm -rf "$tmp"
  [[ -n "$dir" && -f "$dir/go.mod" ]] || fail_with_log hatchet "$buildlog" "go mod download gave no source directory for $HATCHET_MODULE@$HATCHET_VERSION"
  for b in "${HATCHET_BINARIES[@]}"; do pkgs+=("./cmd/$b"); done
  # main.Version: the SDKs gate features on the version the engine reports (the default in the
  # source is an old placeholder). CGO off: pure Go, as upstream ships it.
  if ! (cd "$dir" && CGO_ENABLED=0 GOBIN="$WEFT_BIN_DIR" GOFLAGS=-buildvcs=false \
          go install -mod=readonly -trimpath -ldflags "-X main.Version=$HATCHET_VERSION" "${pkgs[@]}") >>"$buildlog" 2>&1; then
    fail_with_log hatchet "$buildlog" "building the Hatchet engine $HATCHET_VERSION failed"
  fi
  for b in "${HATCHET_BINARIES[@]}"; do
    [[ -x "$(_hatchet_bin "$b")" ]] || fail_with_log hatchet "$buildlog" "the build produced no $(_hatchet_bin "$b")"
  done
  _hatchet_stamp_want >"$WEFT_BIN_DIR/hatchet.version"
  log "built the Hatchet engine in $(elapsed_since "$t0")s"
}

hatchet_prebuild() {
  _hatchet_build
}

# 32 hex characters: a 32-byte cookie secret (the loader accepts 16/24/32-byte secrets).
_hatchet_secret32() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

_hatchet_prepare_dir() {
  mkdir -p "$HATCHET_DIR/config" "$WEFT_LOG_DIR"
  chmod 700 "$HATCHET_DIR"
  if [[ ! -s "$HATCHET_DIR/keys/master.key" || ! -s "$HATCHET_DIR/keys/private_ec256.key" ||
        ! -s "$HATCHET_DIR/keys/public_ec256.key" ]]; then
    log "generating Hatchet's local keysets (master + JWT) in $HATCHET_DIR/keys"
    rm -rf "$HATCHET_DIR/keys"
    mkdir -p "$HATCHET_DIR/keys"
    chmod 700 "$HATCHET_DIR/keys"
    "$(_hatchet_bin hatchet-admin)" keyset create-local-keys --key-dir "$HATCHET_DIR/keys" >>"$HATCHET_LOG" 2>&1 ||
      fail_with_log hatchet "$HATCHET_LOG" "hatchet-admin keyset create-local-keys failed"
    # Tokens signed with the old keys are worthless now.
    rm -f "$HATCHET_TOKEN_FILE"
  fi
  if [[ ! -s "$HATCHET_DIR/cookie-secrets" ]]; then
    (umask 077 && printf '%s %s\n' "$(_hatchet_secret32)" "$(_hatchet_secret32)" >"$HATCHET_DIR/cookie-secrets")
  fi
}

# The engine's (and hatchet-admin's) configuration, as environment variables. No config directory:
# the loader reads <dir>/server.yaml and database.yaml only if they exist, and we point it at an
# empty one.
_hatchet_write_env() {
  local db_url=$1 tmp="$HATCHET_DIR/engine.env.tmp"
  (umask 077 && cat >"$tmp" <<EOF
DATABASE_URL=$db_url
DATABASE_MAX_CONNS=20
DATABASE_MIN_CONNS=2
DATABASE_LOGGER_LEVEL=${WEFT_HATCHET_LOG_LEVEL:-warn}
DATABASE_LOGGER_FORMAT=json
SERVER_URL=http://127.0.0.1:$HATCHET_API_PORT
SERVER_PORT=$HATCHET_API_PORT
SERVER_GRPC_PORT=$HATCHET_GRPC_PORT
SERVER_GRPC_BIND_ADDRESS=127.0.0.1
SERVER_GRPC_BROADCAST_ADDRESS=127.0.0.1:$HATCHET_GRPC_PORT
SERVER_GRPC_INSECURE=true
SERVER_INTERNAL_CLIENT_BASE_STRATEGY=none
SERVER_INTERNAL_CLIENT_BASE_INHERIT_BASE=false
SERVER_INTERNAL_CLIENT_INTERNAL_GRPC_BROADCAST_ADDRESS=127.0.0.1:$HATCHET_GRPC_PORT
SERVER_HEALTHCHECK=false
SERVER_MSGQUEUE_KIND=postgres
SERVER_SECURITY_CHECK_ENABLED=false
SERVER_MONITORING_ENABLED=false
SERVER_VERSION_OVERRIDE=$HATCHET_VERSION
SERVER_AUTH_COOKIE_DOMAIN=localhost
SERVER_AUTH_COOKIE_INSECURE=true
SERVER_AUTH_COOKIE_SECRETS=$(<"$HATCHET_DIR/cookie-secrets")
SERVER_ENCRYPTION_MASTER_KEYSET_FILE=$HATCHET_DIR/keys/master.key
SERVER_ENCRYPTION_JWT_PRIVATE_KEYSET_FILE=$HATCHET_DIR/keys/private_ec256.key
SERVER_ENCRYPTION_JWT_PUBLIC_KEYSET_FILE=$HATCHET_DIR/keys/public_ec256.key
SERVER_LOGGER_LEVEL=${WEFT_HATCHET_LOG_LEVEL:-warn}
SERVER_LOGGER_FORMAT=json
SERVER_ADDITIONAL_LOGGERS_QUEUE_LEVEL=${WEFT_HATCHET_LOG_LEVEL:-warn}
SERVER_ADDITIONAL_LOGGERS_QUEUE_FORMAT=json
SERVER_ADDITIONAL_LOGGERS_PGXSTATS_LEVEL=${WEFT_HATCHET_LOG_LEVEL:-warn}
SERVER_ADDITIONAL_LOGGERS_PGXSTATS_FORMAT=json
DEFAULT_TENANT_ID=$HATCHET_TENANT_ID
EOF
  ) && mv "$tmp" "$HATCHET_DIR/engine.env"
}

# Run CMD with the engine's configuration in its environment (and nothing of ours that could clash).
_hatchet_with_env() {
  local -a kv=()
  mapfile -t kv <"$HATCHET_DIR/engine.env"
  env "${kv[@]}" "$@"
}

# One authenticated unary gRPC call over cleartext HTTP/2: /Dispatcher/GetVersion with an empty
# request. Prints the grpc-status (0 = OK, 16 = UNAUTHENTICATED, ...); fails if there is no answer.
# The token goes to curl in a header file (never on a command line or in a log).
_hatchet_grpc_status() {
  [[ -s "$HATCHET_TOKEN_FILE" ]] || return 1
  local hdr out status
  hdr=$(umask 077 && mktemp "$HATCHET_DIR/.hdr.XXXXXX") || return 1
  printf 'authorization: Bearer %s\n' "$(tr -d ' \n' <"$HATCHET_TOKEN_FILE")" >"$hdr"
  out=$(printf '\0\0\0\0\0' | curl -s --http2-prior-knowledge --max-time 5 -o /dev/null -D - \
          -H @"$hdr" -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- \
          "http://127.0.0.1:$HATCHET_GRPC_PORT/Dispatcher/GetVersion" 2>/dev/null)
  rm -f "$hdr"
  status=$(printf '%s\n' "$out" | tr -d '\r' | sed -n 's/^grpc-status: *\([0-9]*\)$/\1/Ip' | tail -n 1)
  [[ -n "$status" ]] || return 1
  printf '%s' "$status"
}

_hatchet_ready() { [[ "$(_hatchet_grpc_status)" == 0 ]]; }

hatchet_status() {
  pid_alive hatchet-engine && _hatchet_ready
}

_hatchet_mint_token() {
  local tmp="$HATCHET_TOKEN_FILE.tmp"
  # A fresh token: ES256 JWT for the default tenant, valid 10 years (a throwaway test engine).
  if ! (umask 077 && _hatchet_with_env "$(_hatchet_bin hatchet-admin)" token create --config "$HATCHET_DIR/config" \
          --tenant-id "$HATCHET_TENANT_ID" --name weft-harness --expiresIn 87600h >"$tmp" 2>>"$HATCHET_LOG"); then
    rm -f "$tmp"
    fail_with_log hatchet "$HATCHET_LOG" "hatchet-admin token create failed"
  fi
  # stdout is the token alone; keep its last line in case the admin tool printed anything before it.
  tail -n 1 "$tmp" | tr -d ' \r\n' >"$tmp.1" && rm -f "$tmp" && chmod 600 "$tmp.1" && mv "$tmp.1" "$HATCHET_TOKEN_FILE"
  [[ "$(head -c 2 "$HATCHET_TOKEN_FILE")" == ey ]] ||
    fail_with_log hatchet "$HATCHET_LOG" "hatchet-admin token create printed no JWT"
  log "minted a Hatchet API token for tenant $HATCHET_TENANT_ID ($HATCHET_TOKEN_FILE)"
}

hatchet_up() {
  ensure_apt curl
  _hatchet_build
  if pid_alive hatchet-engine; then
    if [[ -s "$HATCHET_TOKEN_FILE" ]]; then
      wait_started hatchet-engine "$HATCHET_LOG" 60 "an authenticated gRPC call to 127.0.0.1:$HATCHET_GRPC_PORT" _hatchet_ready
      return 0
    fi
    hatchet_down   # running, but its token is gone: start over
  fi
  if port_open "$HATCHET_GRPC_PORT"; then
    die "port 127.0.0.1:$HATCHET_GRPC_PORT is taken by a process that scripts/services did not start (see: ss -ltnp 'sport = :$HATCHET_GRPC_PORT')"
  fi
  declare -F postgres_up >/dev/null || die "hatchet needs scripts/services.d/postgres.sh"
  postgres_up
  local db_url t0
  db_url=$(postgres_hatchet_url)
  _hatchet_prepare_dir
  _hatchet_write_env "$db_url"
  printf '\n=== %s scripts/services up hatchet ===\n' "$(date -Is)" >>"$HATCHET_LOG"

  # Migrations (goose, embedded, under a Postgres lock) and the seed (admin user + default tenant)
  # are both no-ops on a database that already has them.
  t0=$(now_s)
  _hatchet_with_env "$(_hatchet_bin hatchet-migrate)" >>"$HATCHET_LOG" 2>&1 ||
    fail_with_log hatchet "$HATCHET_LOG" "hatchet-migrate failed"
  log "hatchet: migrations done ($(elapsed_since "$t0")s)"
  _hatchet_with_env "$(_hatchet_bin hatchet-admin)" seed --config "$HATCHET_DIR/config" >>"$HATCHET_LOG" 2>&1 ||
    fail_with_log hatchet "$HATCHET_LOG" "hatchet-admin seed failed"

  (
    mapfile -t kv <"$HATCHET_DIR/engine.env"
    for e in "${kv[@]}"; do export "${e?}"; done
    start_bg hatchet-engine "$HATCHET_LOG" "$(_hatchet_bin hatchet-engine)" --config "$HATCHET_DIR/config"
  )
  wait_started hatchet-engine "$HATCHET_LOG" 90 "the Hatchet gRPC port 127.0.0.1:$HATCHET_GRPC_PORT" port_open "$HATCHET_GRPC_PORT"

  # Reuse the token while the engine accepts it (same database, same keys, same SERVER_URL);
  # otherwise mint a new one.
  local st=""
  if [[ -s "$HATCHET_TOKEN_FILE" ]]; then
    st=$(_hatchet_grpc_status || true)
  fi
  if [[ "$st" != 0 ]]; then
    _hatchet_mint_token
  fi
  wait_started hatchet-engine "$HATCHET_LOG" 60 "an authenticated gRPC call (Dispatcher/GetVersion) to 127.0.0.1:$HATCHET_GRPC_PORT" _hatchet_ready
}

hatchet_down() {
  stop_pid hatchet-engine TERM 30
}

hatchet_address() { printf '127.0.0.1:%s' "$HATCHET_GRPC_PORT"; }

hatchet_env() {
  printf 'WEFT_HATCHET_HOST_PORT=127.0.0.1:%s\n' "$HATCHET_GRPC_PORT"
  printf 'WEFT_HATCHET_TOKEN_FILE=%s\n' "$HATCHET_TOKEN_FILE"
  # Empty: no REST API runs (hatchet-api would listen on every interface). The token's server_url
  # (http://127.0.0.1:$HATCHET_API_PORT) answers nothing; everything weft uses is gRPC.
  printf 'WEFT_HATCHET_API_URL=\n'
  printf 'WEFT_HATCHET_TENANT_ID=%s\n' "$HATCHET_TENANT_ID"
  printf 'WEFT_HATCHET_TLS_STRATEGY=none\n'
  printf 'WEFT_HATCHET_VERSION=%s\n' "$HATCHET_VERSION"
}
