#!/usr/bin/env bash
# The README's test command: install what is missing, start real services, lint, test.
# Services this script starts are stopped again at the end; ones already running are left alone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.local/bin:$PATH"

scripts/bootstrap.sh
scripts/services.sh install

started_here=0
if ! scripts/services.sh status | grep -q 'ferretdb: running'; then started_here=1; fi
scripts/services.sh start
cleanup() { if [ "$started_here" = 1 ]; then scripts/services.sh stop; fi; }
trap cleanup EXIT

echo "== ruff" >&2
uv run --frozen ruff check src tests bench deploy
uv run --frozen ruff format --check src tests bench deploy
echo "== mypy --strict" >&2
uv run --frozen mypy --strict src
echo "== pytest" >&2
rm -f .coverage .coverage.*
uv run --frozen pytest --cov --cov-report=term "$@"
