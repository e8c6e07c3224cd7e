# reportbot — everything goes through the project's own virtual environment.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= reports

.PHONY: venv demo test bench clean

$(BIN)/reportbot: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	@touch $@

venv: $(BIN)/reportbot

demo: venv
	$(BIN)/reportbot demo --out $(OUT)

test: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python tests/bench/bench_engine.py
	$(BIN)/python tests/bench/bench_connectors.py --latency-ms 100
	$(BIN)/python tests/bench/bench_approve.py --customers 50
	$(BIN)/python tests/bench/bench_teams_pacing.py

clean:
	rm -rf $(VENV) $(OUT) reportbot.db .pytest_cache
