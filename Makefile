# reportbot — everything goes through the project's own virtual environment.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= reports

.PHONY: venv demo test lint bench clean images

$(BIN)/reportbot: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,lint]'
	@touch $@

venv: $(BIN)/reportbot

demo: venv
	$(BIN)/reportbot demo --out $(OUT)

test: venv
	$(BIN)/python -m pytest -q

# ruff (lint and format, as configured in pyproject.toml) and mypy ([tool.mypy]: its files and
# per-package strictness).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: venv
	$(BIN)/python tests/bench/bench_engine.py
	$(BIN)/python tests/bench/bench_connectors.py --latency-ms 100
	$(BIN)/python tests/bench/bench_approve.py --customers 50
	$(BIN)/python tests/bench/bench_teams_pacing.py

clean:
	rm -rf $(VENV) $(OUT) reportbot.db .pytest_cache .mypy_cache .ruff_cache

# Page images of three customers' reports for the README (cover, executive summary, last page).
IMAGES := docs/images
images: venv
	rm -rf $(IMAGES)/.demo && $(BIN)/reportbot demo --out $(IMAGES)/.demo >/dev/null
	for c in ACME GLOBEX HOOLI; do \
	  pdf=$$(ls $(IMAGES)/.demo/$$c/$$c-weekly-*.pdf); n=$$(pdfinfo $$pdf | awk '/^Pages:/ {print $$2}'); \
	  pdftoppm -png -r 60 -f 1 -l 1 -singlefile $$pdf $(IMAGES)/$$c-cover; \
	  pdftoppm -png -r 60 -f 2 -l 2 -singlefile $$pdf $(IMAGES)/$$c-summary; \
	  pdftoppm -png -r 60 -f $$n -l $$n -singlefile $$pdf $(IMAGES)/$$c-last; \
	done
	rm -rf $(IMAGES)/.demo
