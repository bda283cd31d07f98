#!/usr/bin/env bash
# tools/mutation.sh: mutation score of biobench source files (a developer tool, not run in CI).
#
#   TESTS="tests/store" tools/mutation.sh src/biobench/store/records.py
#
# For each file given: copies the working tree (tracked and untracked files, not ignored ones)
# into a scratch folder, runs mutmut 2.5.1 there (mutmut edits the file it mutates, so never in
# the checkout), each mutant tested by `python -m pytest -x -q -m 'not slow' $TESTS`, and prints
# killed/total. Keep TESTS to the tests that exercise the file: a run then takes minutes.
#
# Environment:
#   TESTS         pytest arguments (default: tests)
#   PYTHON        the project's interpreter, which runs the tests (default: python on PATH)
#   MUTMUT_VENV   venv for mutmut, created with mutmut==2.5.1 if absent
#                 (default: ~/.cache/biobench-mutmut)
#   MUTATION_TREE the tree to copy (default: this checkout)
#   MUTATION_WORK keep the scratch copies here (default: a fresh temporary folder). A copy already
#                 there is reused: its tests/ is refreshed from the tree and only the mutants not
#                 yet killed are tested again (its source must be unchanged).
#   MUTATION_RETEST=1  with a reused copy: test its survivors again too. mutmut skips a mutant
#                 already tested against the same tests/ (a hash of that folder), so without this
#                 a wider TESTS selection alone re-tests nothing.
#   MUTATION_SAMPLE=N  test only N of the file's mutants, drawn at random (MUTATION_SEED, default
#                 0) from all of them; the others are marked skipped and left out of the score.
#                 For files whose tests take minutes: the score is then an estimate.
#   MUTATION_SLOW=1  run the slow tests too (default: -m 'not slow'), for files only they reach
#                 (training/distributed.py: real multi-process runs).
# Don't run `mutmut show` or `mutmut results` in a copy while its run goes on: they re-read the
# (mutated) file into mutmut's cache and the run dies with an AssertionError in cache.py.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tree=${MUTATION_TREE:-$root}
tests=${TESTS:-tests}
python=$(command -v "${PYTHON:-python}")
venv=${MUTMUT_VENV:-$HOME/.cache/biobench-mutmut}
work=${MUTATION_WORK:-$(mktemp -d)}
if [ ! -x "$venv/bin/mutmut" ]; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q mutmut==2.5.1
fi

copy_tree() {  # copy_tree DEST [SUBDIR]: the tree's files (git's view where it is a checkout)
  if git -C "$tree" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$tree" && git ls-files -coz --exclude-standard -- "${2:-.}" |
      tar cf - --null -T - --ignore-failed-read 2>/dev/null) | tar xf - -C "$1"
  else
    (cd "$tree" && tar cf - "${2:-.}") | tar xf - -C "$1"
  fi
}

for src in "$@"; do
  dir=$work/$(echo "$src" | tr / _)
  if [ -f "$dir/.mutmut-cache" ]; then
    rm -rf "$dir/tests" && copy_tree "$dir" tests
    # A sample's skipped mutants stay skipped only while stamped with the tests' hash: mutmut
    # tests any mutant tested against other tests than these (see MUTATION_SAMPLE).
    (cd "$dir" && "$venv/bin/python" -c 'import sqlite3; from mutmut.cache import hash_of_tests
db = sqlite3.connect(".mutmut-cache"); db.execute(
  "update Mutant set tested_against_hash = ? where status = ?",
  (hash_of_tests(["tests/"]), "skipped")); db.commit()')
    if [ "${MUTATION_RETEST:-}" = 1 ]; then
      "$venv/bin/python" -c 'import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute(
        "update Mutant set status = ?, tested_against_hash = ? where status = ?",
        ("untested", "", "bad_survived")); db.commit()' "$dir/.mutmut-cache"
    fi
  else
    rm -rf "$dir" && mkdir -p "$dir" && copy_tree "$dir"
    fresh=1
  fi
  # biobench.migrations is top-level migrations/ (see pyproject.toml): put it in the copy's
  # package, else an editable install would serve the checkout's own.
  rm -rf "$dir/src/biobench/migrations" && cp -r "$dir/migrations" "$dir/src/biobench/migrations"
  if [ -n "${MUTATION_SAMPLE:-}" ] && [ "${fresh:-}" = 1 ]; then
    # List every mutant (a test command that always passes: each "survives" at once), then
    # keep the sample untested and mark the rest skipped, which mutmut's cache then keeps.
    (cd "$dir" && "$venv/bin/mutmut" run --paths-to-mutate "$src" --runner true \
      --simple-output --no-progress >"$dir/listing.log" 2>&1) || true
    "$venv/bin/python" - "$dir/.mutmut-cache" "$MUTATION_SAMPLE" "${MUTATION_SEED:-0}" <<'EOF'
import random, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
ids = [i for (i,) in db.execute("select id from Mutant order by id")]
chosen = random.Random(int(sys.argv[3])).sample(ids, min(int(sys.argv[2]), len(ids)))
db.execute("update Mutant set status = 'skipped'")
db.executemany("update Mutant set status = 'untested', tested_against_hash = '' where id = ?",
               [(i,) for i in chosen])
db.execute("delete from MiscData where key = 'baseline_time_elapsed'")  # `true`'s, not the tests'
db.commit()
EOF
  fi
  fresh=
  marker=$([ "${MUTATION_SLOW:-}" = 1 ] || echo "-m 'not slow'")
  # mutmut 2.5.1 counts a mutant killed only when the tests exit 1: one that breaks the
  # module's syntax or import fails collection (exit 2) and would count as survived.
  printf '%s\n' "env PYTHONPATH=$dir/src $python -m pytest -x -q -p no:cacheprovider $marker \\" \
    "  $tests || exit 1" >"$dir/.mutation-tests"
  runner="sh $dir/.mutation-tests"
  (cd "$dir" && "$venv/bin/mutmut" run --paths-to-mutate "$src" --runner "$runner" \
    --simple-output --no-progress >"$dir/mutmut.log" 2>&1) || true  # non-zero: mutants survived
  "$venv/bin/python" - "$dir/.mutmut-cache" "$src" <<'EOF'
import collections, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
n = collections.Counter(s for (s,) in db.execute("select status from Mutant"))
everything, sampled = sum(n.values()), n.pop("skipped", 0)
# A mutant that hangs the tests is caught too, and so is a "suspicious" one: mutmut's name for a
# mutant the tests failed on, only slowly (more than twice the baseline run's time).
caught = n["ok_killed"] + n["bad_timeout"] + n["ok_suspicious"]
total = sum(n.values())
print(f"{sys.argv[2]}: killed {caught}/{total} = {100 * caught / max(total, 1):.0f}%",
      f"(survived {n['bad_survived']}, of the killed: timeout {n['bad_timeout']},",
      f"suspicious {n['ok_suspicious']}; untested {n['untested']})" + (
      f"; a random sample of {total} of the file's {everything} mutants" if sampled else ""))
EOF
  echo "  survivors: (cd $dir && $venv/bin/mutmut results)"
done
