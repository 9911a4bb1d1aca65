"""Mutation testing: plant each plausible bug of mutants/catalogue.py and run the fast suite.

A mutant is *killed* when at least one fast test fails with it planted; one
that survives is a bug no test would catch. Every mutant is planted in a
temporary copy of the repository (the working tree is never touched), one at
a time, and the copy's file is restored afterwards::

    python mutants/run.py                      # every mutant; SQLite, then PostgreSQL for
                                               # the mutants marked server_db
    python mutants/run.py --only clock-       # mutants whose name starts with clock-
    python mutants/run.py --server none        # SQLite only (no database server here)
    python mutants/run.py --on postgresql mysql --only pull-   # on those databases only
    python mutants/run.py --list               # the catalogue, and stale snippets

The suite run per mutant is ``pytest -x -q -m "not browser and not live"``;
a mutant's ``tests`` are run first so that most mutants die in seconds.
For a server database, ``PS_DB_NAME`` (default ``ps_mutants``) names it.

It prints the score (killed / (mutants - equivalent - stale)) and every
survivor with why it is plausible. A mutant whose file or snippet is no
longer found (the code moved or changed) is reported *stale*, not run:
repoint it in the catalogue.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mutants.catalogue import MUTANTS  # noqa: E402

PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
          "-m", "not browser and not live"]


def copy_tree(target):
    """The repository's files (tracked and untracked, not ignored) copied into ``target``."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def status_of(mutant, tree):
    """None if the mutant can be planted, else why it is stale."""
    path = tree / mutant.file
    if not path.is_file():
        return f"stale: {mutant.file} does not exist"
    source = path.read_text()
    count = source.count(mutant.original)
    if count != 1:
        return f"stale: the snippet occurs {count} times in {mutant.file}"
    try:
        planted(mutant, source)
    except SyntaxError as exc:
        return f"invalid: the planted code does not compile ({exc.msg}, line {exc.lineno})"
    return None


def planted(mutant, source):
    """``source`` with ``mutant`` planted; a SyntaxError is the catalogue's bug, not a kill."""
    mutated = source.replace(mutant.original, mutant.replacement)
    compile(mutated, mutant.file, "exec")
    return mutated


def run_suite(tree, database, tests=(), timeout=900):
    """None if the suite (``tests`` only, when given) passes in ``tree`` on ``database``,
    else what failed."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PS_DB": database}
    if database == "sqlite":
        env.pop("PS_DB_NAME", None)  # a file path for SQLite: the default temp file is right
    else:
        env.setdefault("PS_DB_NAME", "ps_mutants")
    try:
        done = subprocess.run([*PYTEST, *tests], cwd=tree, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"  # a hang is caught too: no sane suite run takes this long
    # 2 (a collection error: the mutant broke an import) counts as killed;
    # 4 and 5 (bad arguments, no tests ran) mean the catalogue names bad tests.
    if done.returncode in (4, 5):
        raise SystemExit(f"pytest could not run {tests or 'the suite'}:\n{done.stdout}{done.stderr}")
    if done.returncode == 0:
        return None
    # The summary's lines name a test ("tests/..."); captured log lines start
    # with ERROR too ("ERROR    django.request:...").
    failed = [line.split()[1] for line in done.stdout.splitlines()
              if line.startswith(("FAILED ", "ERROR ")) and len(line.split()) > 1
              and line.split()[1].startswith("tests/")]
    return failed[0] if failed else f"pytest exit {done.returncode}"


def kills(mutant, tree, databases):
    """Where some test fails with ``mutant`` planted (database: test), or None."""
    for database in databases:
        for tests in ([mutant.tests] if mutant.tests else []) + [()]:
            failed = run_suite(tree, database, tests)
            if failed:
                return f"{database}: {failed}"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=(), help="run mutants whose name starts so")
    parser.add_argument("--server", default="postgresql", choices=["postgresql", "mysql", "none"],
                        help="server database for the mutants marked server_db (default postgresql)")
    parser.add_argument("--on", nargs="*", choices=["sqlite", "postgresql", "mysql"],
                        help="run each mutant on these databases only (checking that a "
                        "database's own tests kill it)")
    parser.add_argument("--list", action="store_true", help="list the catalogue and stop")
    args = parser.parse_args(argv)

    selected = [m for m in MUTANTS if not args.only or m.name.startswith(tuple(args.only))]
    names = [m.name for m in MUTANTS]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise SystemExit(f"duplicate mutant names: {sorted(duplicates)}")

    with tempfile.TemporaryDirectory(prefix="ps-mutants-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        if args.list:
            for mutant in selected:
                note = status_of(mutant, tree) or ("equivalent" if mutant.equivalent else "ok")
                print(f"{mutant.name:45} {mutant.file:40} {note}")
            return 0
        started = time.monotonic()
        baseline = ["sqlite"]
        if args.server != "none" and any(m.server_db in (True, args.server) for m in selected):
            baseline.append(args.server)
        if args.on:
            baseline = args.on
        for database in baseline:
            failed = run_suite(tree, database)
            if failed:
                raise SystemExit(f"the suite fails on {database} without any mutant ({failed}): "
                                 "fix it first")
        killed, survived, stale, equivalent, skipped = [], [], [], [], []
        for number, mutant in enumerate(selected, 1):
            prefix = f"[{number}/{len(selected)}] {mutant.name}"
            if mutant.equivalent:
                equivalent.append(mutant)
                print(f"{prefix}: equivalent ({mutant.equivalent})", flush=True)
                continue
            if isinstance(mutant.server_db, str) and mutant.server_db not in (args.on or [args.server]):
                skipped.append(mutant)
                print(f"{prefix}: skipped (needs --server {mutant.server_db})", flush=True)
                continue
            problem = status_of(mutant, tree)
            if problem:
                stale.append((mutant, problem))
                print(f"{prefix}: {problem}", flush=True)
                continue
            path = tree / mutant.file
            original = path.read_text()
            path.write_text(planted(mutant, original))
            try:
                databases = ["sqlite"]
                if mutant.server_db and args.server != "none":
                    databases.append(args.server)
                if args.on:
                    databases = args.on
                by = kills(mutant, tree, databases)
            finally:
                path.write_text(original)
            if by:
                killed.append(mutant)
                print(f"{prefix}: killed ({by})", flush=True)
            else:
                survived.append(mutant)
                print(f"{prefix}: SURVIVED", flush=True)

    scored = len(killed) + len(survived)
    score = 100.0 * len(killed) / scored if scored else 100.0
    minutes = (time.monotonic() - started) / 60
    print(f"\n{len(killed)} killed, {len(survived)} survived, {len(equivalent)} equivalent, "
          f"{len(stale)} stale, {len(skipped)} skipped (need another --server), in {minutes:.1f} min")
    print(f"score: {score:.1f}% ({len(killed)}/{scored})")
    for mutant in survived:
        print(f"\nSURVIVOR {mutant.name} ({mutant.file}): {mutant.why}\n"
              f"  - {mutant.original!r}\n  + {mutant.replacement!r}")
    for mutant, problem in stale:
        print(f"\nSTALE {mutant.name}: {problem}; fix or repoint it in mutants/catalogue.py")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
