#!/usr/bin/env bash
# Run the test suite. The fixtures start the servers on free ports and stop them at
# the end, also when tests fail. pytest's exit code 5 ("no tests collected") is an
# error here: a suite that runs nothing must not pass.
set -uo pipefail
cd "$(dirname "$0")/.."

.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests; check the selection given in PYTEST_ARGS" >&2
fi
exit "$status"
