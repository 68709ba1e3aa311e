# shellcheck shell=bash
# python: a virtualenv with the Python peers (Celery, temporalio, hatchet-sdk) pinned in
# scripts/requirements-peers.txt. Rebuilt from scratch only when that file or the base Python changes.

PYTHON_VENV="$WEFT_CACHE_DIR/venv"
PYTHON_REQUIREMENTS="$WEFT_ROOT/scripts/requirements-peers.txt"
PYTHON_STAMP="$PYTHON_VENV/.weft-stamp"

_python_base() { printf '%s' "${WEFT_BASE_PYTHON:-python3}"; }

_python_want_stamp() {
  local base ver
  base=$(command -v "$(_python_base)") || die "no $(_python_base) on PATH (set WEFT_BASE_PYTHON to a Python ≥ 3.10)"
  ver=$("$base" -c 'import sys; print(sys.version.split()[0])')
  printf '%s %s %s' "$(sha256sum "$PYTHON_REQUIREMENTS" | cut -d' ' -f1)" "$base" "$ver"
}

python_status() {
  [[ -x "$PYTHON_VENV/bin/python" && -f "$PYTHON_STAMP" ]] || return 1
  [[ "$(<"$PYTHON_STAMP")" == "$(_python_want_stamp)" ]]
}

python_up() {
  if python_status; then return 0; fi
  local want base piplog="$WEFT_LOG_DIR/python.log"
  want=$(_python_want_stamp)
  base=$(command -v "$(_python_base)")
  mkdir -p "$WEFT_LOG_DIR" "$WEFT_CACHE_DIR"
  log "building the Python peer venv $PYTHON_VENV (log: $piplog)"
  rm -rf "$PYTHON_VENV"
  if ! "$base" -m venv "$PYTHON_VENV" >"$piplog" 2>&1; then
    # Debian's own python3 needs python3-venv for ensurepip.
    [[ "$base" == /usr/bin/* ]] && ensure_apt python3-venv
    rm -rf "$PYTHON_VENV"
    "$base" -m venv "$PYTHON_VENV" >>"$piplog" 2>&1 || fail_with_log python "$piplog" "could not create the venv $PYTHON_VENV"
  fi
  if ! timeout "$WEFT_INSTALL_TIMEOUT" "$PYTHON_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
      -r "$PYTHON_REQUIREMENTS" >>"$piplog" 2>&1; then
    fail_with_log python "$piplog" "pip could not install $PYTHON_REQUIREMENTS"
  fi
  if ! "$PYTHON_VENV/bin/python" -c 'import celery, redis, temporalio, hatchet_sdk' >>"$piplog" 2>&1; then
    fail_with_log python "$piplog" "the peer venv was installed but its packages do not import"
  fi
  printf '%s' "$want" >"$PYTHON_STAMP"
}

python_down() { return 0; }   # nothing runs

python_address() { printf '%s' "$PYTHON_VENV/bin/python"; }

python_env() {
  printf 'WEFT_PYTHON=%s\n' "$PYTHON_VENV/bin/python"
}
