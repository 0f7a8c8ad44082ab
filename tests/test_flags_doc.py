"""docs/flags.md is what tools/flags_doc.py writes from the CLIs' parsers: every flag is there,
and adding one without regenerating the file fails here."""

from __future__ import annotations

import argparse

from tests.conftest import ROOT
from tools import flags_doc


def test_the_flag_reference_is_current_and_names_every_flag():
    text = flags_doc.render()
    assert (ROOT / "docs" / "flags.md").read_text(encoding="utf-8") == text, "run make flags-doc"
    for name in flags_doc.CLIS:
        parser = __import__(f"app.{name}", fromlist=["build_parser"]).build_parser()
        subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parsers = [parser] + [sub for action in subcommands for sub in action.choices.values()]
        for p in parsers:
            for action in p._actions:
                for flag in action.option_strings:
                    if flag not in ("-h", "--help"):
                        assert f"`{flag}`" in text, (name, flag)


def test_a_new_flag_makes_the_reference_stale(monkeypatch):
    from app import predict

    build = predict.build_parser

    def with_one_more():
        parser = build()
        parser.add_argument("--brand-new", help="a flag nobody documented")
        return parser

    monkeypatch.setattr(predict, "build_parser", with_one_more)
    text = flags_doc.render()
    assert "`--brand-new`" in text and text != (ROOT / "docs" / "flags.md").read_text(encoding="utf-8")
