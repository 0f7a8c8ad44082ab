"""Execute a notebook headless and save the executed copy (outputs included) elsewhere.

    python tools/run_notebook.py notebooks/walkthrough.ipynb build/walkthrough.ipynb

The notebook in git stays clean; `make notebook` writes the executed copy under build/.
A cell error stops the run with a non-zero exit.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def run(source: Path, target: Path, timeout: int = 900) -> None:
    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(source.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    print(f"executed {source} in {time.perf_counter() - start:.0f}s -> {target}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        run(Path(sys.argv[1]), Path(sys.argv[2]))
    except CellExecutionError as e:
        print(str(e)[-3000:], file=sys.stderr)
        sys.exit(1)
