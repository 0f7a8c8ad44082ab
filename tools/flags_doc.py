"""Write docs/flags.md: every flag of every CLI, from the parsers themselves (`build_parser`).

`make flags-doc` runs it; tests/test_flags_doc.py fails when the file is stale.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "flags.md"
CLIS = ("train", "predict", "evaluate", "data", "convert")
ENVIRONMENT = (
    ("BERTCLF_CACHE_DIR", "where the throughput and CPU fusion probes cache their figures "
                          "(default `~/.cache/bertclf`)"),
    ("BERTCLF_HUB_CACHE", "where the offline encoder is converted to (default `saved_models/hub`)"),
    ("BERTCLF_CPU_FUSION", "`0` keeps the CPU fusion flags out of the process (then `--cpu-fusion` "
                           "can only be off)"),
    ("TF_CONFIG", "a multi-worker cluster's description, as tf.distribute reads it"),
)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _rows(actions) -> list[str]:
    rows = []
    for action in actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or "-h" in action.option_strings:
            continue
        flags = ", ".join(f"`{o}`" for o in action.option_strings)
        rows.append(f"| {flags} | {_cell(action.help or '')} |")
    return rows


def _section(title: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f"## `{title}`", ""]
    positionals = [a for a in parser._actions if not a.option_strings and a.help
                   and not isinstance(a, argparse._SubParsersAction)]
    for action in positionals:
        lines += [f"Positional `{action.dest}`: {_cell(action.help)}", ""]
    for group in parser._action_groups:
        rows = _rows(group._group_actions)
        if not rows:
            continue
        if group.title not in ("options", "optional arguments"):
            lines += [f"### {group.title}", ""]
        lines += ["| flag | what it does |", "| --- | --- |", *rows, ""]
    return lines


def render() -> str:
    lines = ["# Flags", "",
             "Every flag of every command, generated from the commands' own parsers by `make flags-doc`",
             "(`tools/flags_doc.py`); a test fails when this file is stale. `python -m app.train` also reads",
             "the same settings from `--config FILE` (JSON or YAML, the flags' names with underscores).", ""]
    for name in CLIS:
        parser = importlib.import_module(f"app.{name}").build_parser()
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subparsers:
            for command, sub in subparsers[0].choices.items():
                lines += _section(f"python -m app.{name} {command}", sub)
        else:
            lines += _section(f"python -m app.{name}", parser)
    lines += ["## Environment", "", "| variable | what it does |", "| --- | --- |"]
    lines += [f"| `{name}` | {_cell(text)} |" for name, text in ENVIRONMENT]
    return "\n".join(lines) + "\n"


def main() -> int:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    sys.path.insert(0, str(ROOT))
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
