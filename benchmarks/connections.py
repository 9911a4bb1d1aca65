"""What persistent database connections are worth to a sync server: small pulls per second.

A sync client pulls often, and a pull with nothing new is a few small
queries; opening a database connection per request can cost more than the
pull. This serves the example site with gunicorn (one worker) on a scratch
database, once with ``CONN_MAX_AGE=0`` (a connection per request, Django's
default) and once with ``CONN_MAX_AGE=60`` (what the example site and
docs/deployment.md use), and prints the rate of incremental pulls of each
and their ratio, measured in the same run. Run from the repository root::

    python benchmarks/connections.py --db postgresql --seconds 5
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.integration.live

from tests.integration import live  # noqa: E402


def pulls_per_second(url, seconds):
    """Incremental pulls (``since`` = the last ``now``) from one client, back to back."""
    import requests

    session = requests.Session()
    since = session.get(url, params={"since": 0}, timeout=30).json()["now"]
    count, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = session.get(url, params={"since": since}, timeout=30)
        answer.raise_for_status()
        count += 1
    return count / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="postgresql", choices=live.VENDORS)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    rates = {}
    with live.scratch_database(args.db, "connections") as env:
        for age in ("0", "60"):
            extra = {"PS_DB_CONN_MAX_AGE": age, "PS_THROTTLE": "0"}
            with live.gunicorn(env, workers=1, extra_env=extra) as server:
                url = f"{server.url}/projectUpdates"
                pulls_per_second(url, 1)  # warm up: imports, first connection
                rates[age] = pulls_per_second(url, args.seconds)
    print(f"{args.db}, gunicorn 1 worker, incremental pulls from one client:")
    print(f"  CONN_MAX_AGE=0   {rates['0']:8.1f} pulls/s  (a connection per request)")
    print(f"  CONN_MAX_AGE=60  {rates['60']:8.1f} pulls/s  = {rates['60'] / rates['0']:.2f}x")


if __name__ == "__main__":
    main()
