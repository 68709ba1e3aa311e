#!/usr/bin/env bash
# What a worker needs on disk (docs/benchmarks.md, "Footprint"): each backend's C++ worker as built in
# a normal tree (the binary plus the shared libraries it loads) and in a -DWEFT_STATIC_LINK=ON tree (one
# file), both stripped of debug information; and the installed size of the Python packages the peer
# worker imports (the SDK and everything it requires, from the wheels' RECORD files).
#
#   scripts/with-services --need python benchmarks/footprint.sh <build dir> <static build dir>
#
# Build the workers first in both trees:
#   cmake --build <dir> --target celery_peer bench.temporal_worker bench.hatchet_peer
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
dynamic="$1" static="$2" python="${3:-${WEFT_PYTHON:-python3}}"
workers=(celery:tests/celery/celery_peer temporal:benchmarks/bench.temporal_worker hatchet:benchmarks/bench.hatchet_peer)
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
stripped() { strip -o "$tmp" "$1" && stat -c %s "$tmp"; }

printf '%-9s %-28s %-28s %-14s\n' backend "dynamic: binary + libs" "static (-static, stripped)" "shared libs"
for w in "${workers[@]}"; do
  name="${w%%:*}" path="${w#*:}"
  for f in "$dynamic/$path" "$static/$path"; do
    [[ -x "$f" ]] || { echo "footprint: no $f: build it first (see the top of $0)" >&2; exit 1; }
  done
  if ldd "$static/$path" >/dev/null 2>&1; then
    echo "footprint: $static/$path is not static: configure $static with -DWEFT_STATIC_LINK=ON" >&2
    exit 1
  fi
  libs=0 n=0
  while read -r lib; do
    libs=$((libs + $(stat -L -c %s "$lib"))) n=$((n + 1))
  done < <(ldd "$dynamic/$path" | awk '/=> \// { print $3 }')
  bin="$(stripped "$dynamic/$path")"
  printf '%-9s %-28s %-28s %-14s\n' "$name" "$(mib "$bin") + $(mib "$libs")" "$(mib "$(stripped "$static/$path")")" "$n"
done

echo
echo "Python peers: installed size of the package and what it requires"
"$python" - <<'EOF'
import importlib.metadata as md
import re

def closure(name, seen):
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        return
    seen[key] = dist
    for req in dist.requires or []:
        if "extra ==" in req:
            continue
        closure(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0], seen)

for sdk in ("celery", "temporalio", "hatchet-sdk"):
    seen = {}
    closure(sdk, seen)
    if not seen:
        print(f"  {sdk}: not installed (scripts/services up python)")
        continue
    size = sum(f.size or 0 for d in seen.values() for f in (d.files or []))
    print(f"  {sdk} {seen[re.sub(r'[-_.]+', '-', sdk).lower()].version}: {size / 1048576:.1f} MiB in {len(seen)} packages")
EOF
