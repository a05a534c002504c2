"""`python -m workers.main [dramatiq options]`: the dramatiq worker for workers.actors.

The same as `python -m dramatiq workers.actors [options]`, e.g. `--processes 1 --threads 4`.
"""

from __future__ import annotations

import sys

from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser


def main(argv: list[str] | None = None) -> int:
    options = sys.argv[1:] if argv is None else argv
    args = make_argument_parser().parse_args(["workers.actors", *options])
    return int(dramatiq_main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
