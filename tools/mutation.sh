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
  exposure)   src='"engine/dates.py"'
              tests='"tests/test_exposure_edges.py", "tests/test_exposure.py"' ;;
  estimators) src='"engine/credibility.py", "engine/incidence.py"'
              tests='"tests/test_credibility.py", "tests/test_incidence.py"' ;;
  shares)     src='"engine/decompose.py"'
              tests='"tests/test_decompose.py", "tests/test_decompose_oracle.py"' ;;
  all)        src='"engine/dates.py", "engine/credibility.py", "engine/incidence.py", "engine/decompose.py"'
              tests='"tests/test_exposure_edges.py", "tests/test_exposure.py", "tests/test_credibility.py", "tests/test_incidence.py", "tests/test_decompose.py", "tests/test_decompose_oracle.py"' ;;
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
mutmut results --all true 2>/dev/null > mutmut-results.txt || mutmut results 2>/dev/null > mutmut-results.txt
grep -v ': killed' mutmut-results.txt || true
for status in killed survived timeout "no tests" "not checked"; do
  printf '%s: %s\n' "$status" "$(grep -c ": $status\$" mutmut-results.txt || true)"
done
