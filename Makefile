# Set-up and everyday targets. `make demo` and `make test` are the two commands of the README.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0

.PHONY: install demo test test-all bench bench-torchvision lint clean

install: $(STAMP)

# torch is pinned first so pip takes the local CPU wheel; a bare `torch` would pull a CUDA build.
# pip byte-compiles every file it installs one by one (about 70 of the install's 110 s on 2
# cores); compileall does the same work on every core in seconds. A file that does not compile
# (a template shipped as .py) costs nothing but its .pyc, hence `|| true`.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile $(TORCH)
	$(PY) -m pip install -q --no-compile -e '.[dev]'
	$(PY) -m compileall -qq -j 0 $(VENV)/lib || true
	touch $(STAMP)

# The demo's search is short (16 candidates, evolution with a population of 8) so that a cold
# run, supernet training and latency profiling included, fits ten minutes on 2 cores; a real
# search is `nas-search --budget 60ms` (200 candidates, population 100). Each run starts runs/demo
# afresh; the latency table and the supernet stay cached.
DEMO_SEARCH := --budget 60ms --trials 16 --population 8 --name demo --overwrite

demo: install
	$(VENV)/bin/nas-search $(DEMO_SEARCH)

# Two steps: every test but Ray's on two pytest-xdist workers (one per core, one torch thread
# each), then the tests that start Ray nodes (marker "ray") in one process on their own: a Ray
# node started beside a busy worker can miss Ray's fixed 30 s start-up wait. The second step
# also runs the tests marked "alone": they time networks end to end and act on the figures (the
# quickstart's NetAdapt run), which a busy worker beside them inflates several times over.
# Both steps always run; make fails if either did. TEST_WORKERS=1 runs the first step in one
# process.
TEST_WORKERS ?= 2
ifeq ($(TEST_WORKERS),1)
TEST_PARALLEL := -p no:xdist
else
TEST_PARALLEL := -n $(TEST_WORKERS)
endif
test: install
	$(PY) -m pytest -q $(TEST_PARALLEL) -m 'not slow and not fuzz and not ray and not alone' \
		--durations=10; \
	first=$$?; \
	$(PY) -m pytest -v -p no:xdist -m '(ray or alone) and not slow and not fuzz' --durations=5 \
		|| exit 1; \
	exit $$first

test-all: install
	$(PY) -m pytest -q -m ''

# Every benchmark, one after another, each under a time limit (the bound and the last run's
# minutes: bench/README.md); rewrites bench/results/*.json, and ends by running
# bench/render_docs.py, which rewrites the figures blocks of the docs from them.
bench: install
	$(PY) bench/run_all.py

# The true comparison against torchvision (and timm, for `--format timm`) needs a torch that
# torchvision imports beside (large, from local disk); kept apart from .venv and `make test`.
TV_VENV := .venv-tv
bench-torchvision:
	test -x $(TV_VENV)/bin/python || $(PYTHON) -m venv $(TV_VENV)
	test -f $(TV_VENV)/.installed || ( $(TV_VENV)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1 timm \
		&& $(TV_VENV)/bin/python -m pip install -q -e . && touch $(TV_VENV)/.installed )
	$(TV_VENV)/bin/python bench/torchvision_equivalence.py

lint: install
	$(VENV)/bin/ruff check nas search_spaces latency_models tests bench

clean:
	rm -rf $(VENV) $(TV_VENV) build *.egg-info .pytest_cache
