"""`classcap models`: provision the pinned models into the user cache."""

from __future__ import annotations

from blur.models import provision
from pipeline.commands.common import print_result, say


def add_parser(commands) -> None:
    models = commands.add_parser("models", help="provision the pinned detection models into the user cache")
    models.set_defaults(run=models_command)


def models_command(args) -> int:
    paths = provision(log=say)
    print_result({"models": {name: str(path) for name, path in paths.items()}})
    return 0
