"""``submit``'s plan inputs (DESIGN §14): ``--input NAME=VALUE`` (repeatable) over ``--inputs-file F``.

The values stay strings here; the server converts each to its declared type (``8080`` for an int input,
``true`` for a bool) and refuses what does not fit, naming ``inputs.NAME``. Imports ``core`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

import core
from ui.cli.options import read_bounded

InputOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        metavar="NAME=VALUE",
        help="A value for one of the plan's declared inputs (repeatable; wins over --inputs-file).",
    ),
]
InputsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--inputs-file",
        metavar="FILE",
        help="A YAML or JSON mapping of input names to values.",
        dir_okay=False,
    ),
]


def gather_inputs(pairs: list[str] | None, inputs_file: Path | None) -> dict[str, Any] | None:
    """The values given on the command line (None: none at all).

    Raises:
        InvalidInput: ``--input`` without ``=`` or a name given twice; an unreadable or malformed file.
    """
    if not pairs and inputs_file is None:
        return None
    values: dict[str, Any] = {}
    if inputs_file is not None:
        try:
            with inputs_file.open("rb") as stream:
                raw = read_bounded(stream, str(inputs_file))
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise core.InvalidInput(f"cannot read {inputs_file}: {why}", path="--inputs-file") from None
        try:
            values.update(core.load_input_values(raw))
        except core.InvalidInput as exc:
            issues = [(f"{inputs_file}: {p}" if p else str(inputs_file), m) for p, m in exc.issues]
            raise core.InvalidInput(issues) from None
    given: set[str] = set()
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise core.InvalidInput(f"{pair!r}: write NAME=VALUE", path="--input")
        if name in given:
            raise core.InvalidInput(f"input {name!r} given twice", path="--input")
        given.add(name)
        values[name] = value
    return values
