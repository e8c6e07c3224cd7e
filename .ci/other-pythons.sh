#!/usr/bin/env bash
# The newer Pythons the package declares (3.12, 3.13): each gets its own venv from the test lock
# and runs a cross-section of the suite (engine, formulas, config, PDF and web page, links, the
# metrics/healthz loop, a connector). The full suite runs on 3.11 (`make test`). An interpreter
# that is not on this machine is said, not failed.
#   bash .ci/other-pythons.sh [3.12 3.13]
set -euo pipefail
cd "$(dirname "$0")/.."
tests=(tests/test_metrics.py tests/test_config.py tests/test_pdf.py tests/test_markdown.py tests/test_html.py
       tests/bot/test_links.py tests/bot/test_operations.py tests/connectors/test_connectwise.py)
versions=("$@")
[[ ${#versions[@]} -gt 0 ]] || versions=(3.12 3.13)
for v in "${versions[@]}"; do
  py=""
  for candidate in "$(command -v "python$v" || true)" $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python 2>/dev/null); do
    if [[ -n "$candidate" ]] && "$candidate" -c 'import sys' 2>/dev/null; then py=$candidate; break; fi
  done
  if [[ -z "$py" ]]; then
    echo "python $v: not on this machine; not tested here"
    continue
  fi
  venv=".venv-py$v"
  if [[ ! -x "$venv/bin/reportbot" || requirements-test.lock -nt "$venv/bin/reportbot" ]]; then
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -c requirements-test.lock -e '.[test]'
  fi
  echo "python $v: $("$venv/bin/python" --version)"
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}"
done
