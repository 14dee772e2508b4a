#!/usr/bin/env bash
# Mutation testing (mutmut), run by hand, not in CI: docs/testing.md records the scores.
#
#   pip install -e '.[test,mutation]'
#   tools/mutation.sh [SCOPE]        SCOPE: exposure | estimators | shares | all (default all)
#
# Works on a copy of the committed tree (git archive HEAD) in a temporary directory, so the
# work tree gets no mutants/ folder; prints mutmut's results (survivors first) at the end.
set -euo pipefail
scope="${1:-all}"
root="$(git rev-parse --show-toplevel)"
work="$(mktemp -d "${TMPDIR:-/tmp}/fentan-mutation.XXXXXX")"
git -C "$root" archive HEAD | tar -x -C "$work"

case "$scope" in
  exposure)   src='"engine/dates.py", "engine/exposure.py"'
              tests='"tests/test_exposure_edges.py", "tests/test_exposure.py", "tests/test_exposure_oracle.py"' ;;
  estimators) src='"engine/incidence.py", "engine/credibility.py"'
              tests='"tests/test_incidence.py", "tests/test_credibility.py"' ;;
  shares)     src='"engine/decompose.py", "engine/sharing.py"'
              tests='"tests/test_decompose.py", "tests/test_decompose_oracle.py", "tests/test_sharing.py"' ;;
  all)        src='"engine/dates.py", "engine/exposure.py", "engine/incidence.py", "engine/credibility.py", "engine/decompose.py", "engine/sharing.py"'
              tests='"tests/test_exposure_edges.py", "tests/test_exposure.py", "tests/test_exposure_oracle.py", "tests/test_incidence.py", "tests/test_credibility.py", "tests/test_decompose.py", "tests/test_decompose_oracle.py", "tests/test_sharing.py"' ;;
  *) echo "usage: $0 [exposure|estimators|shares|all]" >&2; exit 2 ;;
esac

# the whole package is copied to mutants/ (so imports resolve there), only the scope is mutated
cat >> "$work/pyproject.toml" <<TOML

[tool.mutmut]
source_paths = ["engine"]
only_mutate = [$src]
pytest_add_cli_args_test_selection = [$tests]
also_copy = ["models/", "configs/"]
TOML

cd "$work"
echo "mutation testing ($scope) in $work"
mutmut run --max-children "${MUTMUT_CHILDREN:-2}" || true
mutmut results 2>/dev/null | tee mutmut-results.txt
echo "killed: $(grep -c ': killed' mutmut-results.txt || true)  survived: $(grep -c ': survived' mutmut-results.txt || true)"
