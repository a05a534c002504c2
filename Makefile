# Every target installs what it needs from pyproject.toml, so a bare clone works.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST := $(PY) -m pytest

.PHONY: install run test lint typecheck unit bench bench-quick soak proof clean

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

# wrk (the HTTP load generator) is installed with apt-get by the bench when missing.
bench: $(STAMP)
	$(PY) -m bench.run

bench-quick: $(STAMP)
	BENCH_SCALE=quick $(PY) -m bench.run

soak: $(STAMP)
	LEDGER_HYPOTHESIS_EXAMPLES=10000 $(PYTEST) -m soak -p no:randomly tests

# The evidence, each test printing its figure line (-s): every proof in tests/proof at full
# scale, then the stateful hypothesis tests at 10,000 sequences. `make test` runs the same
# proofs at ci scale. Each step is bounded by PROOF_TIMEOUT seconds.
PROOF_TIMEOUT ?= 7200
PROOF_HYPOTHESIS := tests/test_wallet_stateful.py tests/test_distribution_stateful.py \
	tests/test_refund_properties.py tests/test_coupons.py tests/test_read_models.py
proof: $(STAMP)
	PROOF_SCALE=full timeout -k 30 $(PROOF_TIMEOUT) $(PYTEST) -p no:randomly -s tests/proof
	LEDGER_HYPOTHESIS_EXAMPLES=10000 timeout -k 30 $(PROOF_TIMEOUT) \
		$(PYTEST) -p no:randomly -s $(PROOF_HYPOTHESIS)

clean:
	rm -rf $(VENV) .data .pytest_cache
