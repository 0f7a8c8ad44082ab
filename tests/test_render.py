"""app.reporting.render: one list of sections, rendered to Markdown and to HTML with the same content in the
same order."""

from __future__ import annotations

import re

from app.reporting.render import Block, Section, to_html, to_markdown

PNG = b"\x89PNG\r\n\x1a\n"


def _parts():
    return [
        Section("Evaluation report: m/1", [Block("text", "Data: a.csv (3 examples)."),
                                           Block("strong", [("accuracy", "0.6667")])]),
        Section("Findings", [Block("items", ["Only 3 examples <small>"])]),
        Section("Metrics", [Block("notes", ["no examples of ['c']"]),
                            Block("tables", [[("metric", "value"), ("accuracy", "0.6667")],
                                             [("class", "f1"), ("a & b", "0.500")]])]),
        Section("Plots", [Block("images", ["roc_curve.png"])]),
        Section("Most confident mistakes", [Block("quotes", [
            {"id": "id2", "true": "neg", "predicted": "pos", "confidence": 0.62,
             "text": "a <b>bold</b> claim"}], "mistake")]),
    ]


def test_markdown_and_html_say_the_same_in_the_same_order(tmp_path):
    (tmp_path / "roc_curve.png").write_bytes(PNG)
    parts = _parts()
    md, page = to_markdown(parts), to_html(parts, tmp_path)
    titles = [s.title for s in parts]
    assert re.findall(r"^#+ (.+)$", md, re.M) == titles
    assert re.findall(r"<h[12]>(.+?)</h[12]>", page) == titles
    assert "accuracy **0.6667**." in md and "accuracy <b>0.6667</b>" in page
    assert "| class | f1 |\n| --- | --- |\n| a & b | 0.500 |" in md
    assert "<td>a &amp; b</td><td class=num>0.500</td>" in page  # numbers right-aligned, text escaped
    assert "> **Note:** no examples of ['c']" in md and "<b>Note:</b> no examples of [&#x27;c&#x27;]" in page
    assert "- `id2` true **neg**, predicted **pos** (0.620): a <b>bold</b> claim" in md
    assert "<blockquote>a &lt;b&gt;bold&lt;/b&gt; claim</blockquote>" in page  # a quote is never markup
    assert "![roc curve](roc_curve.png)" in md and page.count("data:image/png;base64,") == 1
