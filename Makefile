# Every target creates or reuses .venv itself; nothing to install by hand first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test demo check lint typecheck imports docs docs-serve bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,docs]'
	touch $(STAMP)

test: $(STAMP)
	bash .ci/system-deps
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m prefect_model_registry.flows.dev.demo

# The checks that keep the code's shape: lint and format, types, and the import contracts (pyproject.toml).
check: lint typecheck imports

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# mypy and import-linter read the packages under their installed names: a tree of links maps the repository's
# folders to prefect_model_registry.* (the editable install's import hook is invisible to static tools). The
# stub marker keeps mypy from taking the data folder validations/thresholds/ for the module thresholds.py
# (python/mypy#13663); Python never reads .pyi files.
TREE := build/typecheck
LINKS := $(TREE)/prefect_model_registry/__init__.pyi
$(LINKS):
	mkdir -p $(@D)
	for p in registry flows validations; do ln -sfn ../../../$$p $(@D)/$$p; done
	touch $@

typecheck: $(STAMP) $(LINKS)
	$(PY) -m mypy

imports: $(STAMP) $(LINKS)
	PYTHONPATH=$(TREE) $(VENV)/bin/lint-imports

# The documentation site (docs/mkdocs.yml) into build/site: strict, so a broken link, a missing page or a
# docstring mkdocstrings cannot read fails the build. The API reference reads the code through the link tree.
docs: $(STAMP) $(LINKS)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build -f docs/mkdocs.yml --strict

docs-serve: $(STAMP) $(LINKS)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve -f docs/mkdocs.yml -a 127.0.0.1:8000

bench: $(STAMP)
	$(PY) benchmarks/registry_ops.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
