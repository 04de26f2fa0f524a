#!/usr/bin/env bash
# A fresh clone's first `make run`: seconds until the dashboard answers (README "Two commands").
# Usage: PIP_NO_CACHE_DIR=1 bench/first_run.sh [REPO-OR-URL [REV]]
set -euo pipefail
repo="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
port="${PORT:-8599}"
dir="$(mktemp -d)"
git clone -q "$repo" "$dir/clone"
cd "$dir/clone"
[ -n "${2:-}" ] && git checkout -q "$2"
start=$(date +%s.%N)
STREAMLIT_SERVER_PORT=$port STREAMLIT_SERVER_HEADLESS=true DATABASE_URL="sqlite:///$dir/db.sqlite" \
  setsid make run >"$dir/run.log" 2>&1 &
pid=$!
until curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1; do
  sleep 0.5
  if ! kill -0 $pid 2>/dev/null; then echo "make run died"; tail -20 "$dir/run.log"; exit 1; fi
done
end=$(date +%s.%N)
echo "first make run of $(git rev-parse --short HEAD): $(echo "$end - $start" | bc) s to the dashboard answering on :$port"
kill -- -$pid 2>/dev/null || true
echo ".venv: $(du -sh "$dir/clone/.venv" | cut -f1), $("$dir/clone/.venv/bin/pip" list 2>/dev/null | tail -n +3 | wc -l) packages"
rm -rf "$dir"
