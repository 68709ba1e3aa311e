# shellcheck shell=bash
# postgres: Debian's PostgreSQL (15) running our own cluster (initdb) on 127.0.0.1:15432, as the
# `postgres` OS user when we are root. Provides a `hatchet` role and database (timezone UTC) for the
# Hatchet engine; btree_gist comes with the server package.

POSTGRES_PORT=15432
POSTGRES_LOG="$WEFT_LOG_DIR/postgres.log"
POSTGRES_SECRETS="$WEFT_RUN_DIR/postgres"           # passwords, readable by us only

_pg_bin() {
  local d
  for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x "$d/postgres" ]] && { printf '%s' "$d"; return 0; }
  done
  return 1
}

# Where the cluster lives: in the run dir, unless the service user cannot reach it (a checkout under
# /root, say), then under its home, keyed by the run dir so two checkouts never share a cluster.
_pg_base() {
  if ((EUID == 0)) && ! setpriv --reuid=postgres --regid="$(id -g postgres)" --clear-groups -- test -x "$WEFT_RUN_DIR" 2>/dev/null; then
    printf '/var/lib/postgresql/weft-%s' "$(printf '%s' "$WEFT_RUN_DIR" | sha256sum | cut -c1-12)"
  else
    printf '%s/postgres' "$WEFT_RUN_DIR"
  fi
}

_pg_superuser_password() { secret_file "$POSTGRES_SECRETS/postgres.password"; }
_pg_hatchet_password()   { secret_file "$POSTGRES_SECRETS/hatchet.password"; }

# A real query over TCP with the password: what a client of the tests does.
_pg_select1() {
  local bin
  bin=$(_pg_bin) || return 1
  [[ "$(PGPASSWORD="$(_pg_superuser_password)" PGCONNECT_TIMEOUT=5 "$bin/psql" -X -w -h 127.0.0.1 \
        -p "$POSTGRES_PORT" -U postgres -d postgres -tAc 'SELECT 1' 2>/dev/null)" == 1 ]]
}

# Through the unix socket in the cluster's own dir (trust; the dir is 0700 and owned by the service user).
_pg_socket_ready() {
  "$(_pg_bin)/pg_isready" -q -h "$(_pg_base)/run" -p "$POSTGRES_PORT" -U postgres -d postgres
}

_pg_psql_socket() {
  "$(_pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$(_pg_base)/run" -p "$POSTGRES_PORT" -U postgres -d postgres "$@"
}

postgres_status() {
  pid_alive postgres && _pg_select1
}

_pg_provision() {
  local su_pw hatchet_pw
  su_pw=$(_pg_superuser_password)
  hatchet_pw=$(_pg_hatchet_password)
  _pg_psql_socket >>"$POSTGRES_LOG" 2>&1 <<SQL || fail_with_log postgres "$POSTGRES_LOG" "could not create the roles and databases"
ALTER ROLE postgres PASSWORD '$su_pw';
SELECT 'CREATE ROLE hatchet LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hatchet') \gexec
ALTER ROLE hatchet LOGIN PASSWORD '$hatchet_pw';
SELECT 'CREATE DATABASE hatchet OWNER hatchet' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'hatchet') \gexec
ALTER DATABASE hatchet SET timezone TO 'UTC';
SQL
  [[ "$(_pg_psql_socket -tAc "SELECT count(*) FROM pg_available_extensions WHERE name = 'btree_gist'")" == 1 ]] ||
    die "PostgreSQL has no btree_gist extension (Hatchet's migrations need it): apt-get install postgresql-contrib"
}

postgres_up() {
  ensure_apt postgresql postgresql-contrib
  local bin base user
  bin=$(_pg_bin) || die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
  base=$(_pg_base)
  user=$(service_user)
  mkdir -p "$WEFT_LOG_DIR" "$POSTGRES_SECRETS"
  chmod 700 "$POSTGRES_SECRETS" 2>/dev/null || true

  if pid_alive postgres; then
    wait_started postgres "$POSTGRES_LOG" 60 "PostgreSQL SELECT 1 on 127.0.0.1:$POSTGRES_PORT" _pg_select1
    return 0
  fi
  if port_open "$POSTGRES_PORT"; then
    die "port 127.0.0.1:$POSTGRES_PORT is taken by a process that scripts/services did not start (see: ss -ltnp 'sport = :$POSTGRES_PORT')"
  fi

  mkdir -p "$base"
  if [[ ! -s "$base/data/PG_VERSION" ]]; then
    log "creating a PostgreSQL cluster in $base/data (initdb, as OS user $user)"
    rm -rf "$base/data"
    mkdir -p "$base/data"
    (umask 077 && _pg_superuser_password >"$base/pwfile")
    chown -R "$user:" "$base"
    chmod 700 "$base" "$base/data"
    if ! as_service_user "$bin/initdb" -D "$base/data" -U postgres --pwfile="$base/pwfile" \
        -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >>"$POSTGRES_LOG" 2>&1; then
      rm -f "$base/pwfile"
      fail_with_log postgres "$POSTGRES_LOG" "initdb failed in $base/data"
    fi
    rm -f "$base/pwfile"
  fi
  mkdir -p "$base/run"
  chown "$user:" "$base" "$base/run"
  chmod 700 "$base/run"

  local -a as_user=()
  ((EUID == 0)) && as_user=(setpriv --reuid=postgres --regid="$(id -g postgres)" --init-groups --)
  printf '\n=== %s scripts/services up postgres ===\n' "$(date -Is)" >>"$POSTGRES_LOG"
  # Logging goes to stderr (our log). synchronous_commit=off: faster migrations; a crash loses at
  # most the last few transactions of a throwaway test cluster, never its consistency.
  start_bg postgres "$POSTGRES_LOG" "${as_user[@]}" "$bin/postgres" -D "$base/data" \
    -c port="$POSTGRES_PORT" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$base/run" -c unix_socket_permissions=0700 \
    -c timezone=UTC -c log_timezone=UTC -c max_connections=200 \
    -c synchronous_commit=off -c logging_collector=off -c ssl=off
  wait_started postgres "$POSTGRES_LOG" 60 "PostgreSQL socket in $base/run" _pg_socket_ready
  _pg_provision
  wait_started postgres "$POSTGRES_LOG" 30 "PostgreSQL SELECT 1 on 127.0.0.1:$POSTGRES_PORT" _pg_select1
}

postgres_down() {
  # SIGINT = fast shutdown: roll back open transactions, checkpoint, exit.
  stop_pid postgres INT 60
}

postgres_address() { printf '127.0.0.1:%s' "$POSTGRES_PORT"; }

postgres_env() {
  local su_pw hatchet_pw
  su_pw=$(_pg_superuser_password)
  hatchet_pw=$(_pg_hatchet_password)
  printf 'WEFT_POSTGRES_HOST=127.0.0.1\nWEFT_POSTGRES_PORT=%s\n' "$POSTGRES_PORT"
  printf 'WEFT_POSTGRES_URL=postgresql://postgres:%s@127.0.0.1:%s/postgres?sslmode=disable\n' "$su_pw" "$POSTGRES_PORT"
  printf 'WEFT_POSTGRES_HATCHET_URL=postgresql://hatchet:%s@127.0.0.1:%s/hatchet?sslmode=disable\n' "$hatchet_pw" "$POSTGRES_PORT"
}

# For hatchet.sh: the URL of the `hatchet` role and database (password generated once).
postgres_hatchet_url() {
  printf 'postgresql://hatchet:%s@127.0.0.1:%s/hatchet?sslmode=disable' "$(_pg_hatchet_password)" "$POSTGRES_PORT"
}
