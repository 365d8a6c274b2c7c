# Set-up on a fresh machine is two commands: `make run` and `make test`.
# Both create .venv and install the project into it when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run sim test bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## start the control plane (embedded PostgreSQL unless DATABASE_URL is set)
	$(BIN)/telephony serve

sim: $(STAMP)  ## start the FreeSWITCH simulator on 127.0.0.1:8021 (for a machine without FreeSWITCH)
	$(BIN)/telephony sim

test: $(STAMP)  ## lint, type-check and run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(STAMP)  ## benchmarks (ratios against a baseline measured in the same run)
	$(BIN)/pytest tests/bench -m bench -s -q

clean:
	rm -rf $(VENV)
