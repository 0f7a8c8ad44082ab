"""notebooks/walkthrough.ipynb: clean in git, and every cell runs (small settings; `make test-slow`)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "walkthrough.ipynb"


def test_notebook_in_git_has_no_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)


@pytest.mark.slow
@pytest.mark.minilm
def test_notebook_executes_without_errors(minilm_hub_cache, tmp_path, monkeypatch):
    from tools.run_notebook import run

    monkeypatch.setenv("BERTCLF_HUB_CACHE", str(minilm_hub_cache))
    monkeypatch.setenv("BERTCLF_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("BERTCLF_NOTEBOOK_SMALL", "1")
    run(NOTEBOOK, tmp_path / "executed.ipynb")  # raises CellExecutionError on any cell error
    nb = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type == "display_data" and "image/png" in o.get("data", {}) for o in outputs)
    assert (tmp_path / "out" / "saved_models" / "notebook" / "1" / "saved_model.pb").is_file()
    assert (tmp_path / "out" / "runs" / "notebook" / "report" / "report.json").is_file()
    assert json.loads((tmp_path / "out" / "runs" / "notebook-tags" / "report" / "report.json").read_text()
                      )["task"] == "multi-label"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "SMALL run" in text  # says its numbers mean nothing
    assert "localhost:8501/v1/models/notebook:predict" in text  # the model it made, not another
