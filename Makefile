# Two commands for a new machine: `make demo` and `make test`. Both create .venv on first use.
# `make test-fast` runs the unit tests only (no @pytest.mark.slow), for daily work.
VENV ?= .venv
PY := $(VENV)/bin/python
# Real corpora live beside the checkout in CI and on the team's machines; users point
# LIGHTNING_SLT_DATA elsewhere or let the package download into its cache.
SHARED_DATA := $(abspath $(CURDIR)/../shared/data)
ifneq ($(wildcard $(SHARED_DATA)),)
export LIGHTNING_SLT_DATA ?= $(SHARED_DATA)
endif

.PHONY: install demo test test-fast bench clean

install: $(VENV)/.installed

# torch first, pinned to the CPU build that pip finds locally; the package's own range
# (torch>=2.4) is then already satisfied, so no multi-GB CUDA wheel is pulled.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: install
	$(VENV)/bin/lightning-slt demo

# The whole suite, as CI runs it (.ci/run).
test: install
	$(VENV)/bin/ruff check --select F,E9 lightning_slt tests benchmarks results
	$(PY) -m pytest -q

# The unit tests: no subprocess training, DDP, CLI end to end, whole experiments or notebooks
# (the `slow` marker, see pyproject.toml); under 3 minutes on 2 cores.
test-fast: install
	$(VENV)/bin/ruff check --select F,E9 lightning_slt tests benchmarks results
	$(PY) -m pytest -q -m "not slow"

bench: install
	for b in benchmarks/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
