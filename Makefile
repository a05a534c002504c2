# Every target installs what it needs from pyproject.toml, so a bare clone works.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST := $(PY) -m pytest

.PHONY: install run test lint typecheck unit bench soak proof clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m infra.launcher

lint: $(STAMP)
	$(PY) -m ruff check src tests migrations $(wildcard bench)
	$(PY) -m ruff format --check src tests migrations $(wildcard bench)

typecheck: $(STAMP)
	$(PY) -m mypy src/ledger

unit: $(STAMP)
	$(PYTEST)

test: lint typecheck unit

bench: $(STAMP)
	$(PY) -m bench.run

soak: $(STAMP)
	LEDGER_HYPOTHESIS_EXAMPLES=10000 $(PYTEST) -m soak -p no:randomly tests

proof: $(STAMP)
	LEDGER_HYPOTHESIS_EXAMPLES=10000 $(PYTEST) tests

clean:
	rm -rf $(VENV) .data .pytest_cache
