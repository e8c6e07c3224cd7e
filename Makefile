# reportbot — everything goes through the project's own virtual environment.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= reports

.PHONY: venv demo test lint bench clean images lock image browser-image test-pythons

$(BIN)/reportbot: pyproject.toml requirements.lock requirements-test.lock
	@echo "creating $(VENV) and installing the pinned dependencies (requirements-test.lock; a minute or two the first time)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -c requirements-test.lock -e '.[test,lint]'
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

# Re-pin after changing dependencies in pyproject.toml (needs uv: `pip install uv`). The runtime lock
# is what the container image installs; the test lock adds the test extras at the same versions.
lock:
	uv pip compile pyproject.toml --python-version 3.11 --no-header --no-annotate --quiet -o requirements.lock.new
	{ echo "# Runtime dependencies, pinned (what the container image installs). Produced by \`make lock\`:"; \
	  echo "#   uv pip compile pyproject.toml --python-version 3.11 -o requirements.lock"; \
	  cat requirements.lock.new; } > requirements.lock && rm requirements.lock.new
	uv pip compile pyproject.toml --extra test --extra lint -c requirements.lock --python-version 3.11 --no-header \
	  --no-annotate --quiet -o requirements-test.lock.new
	{ echo "# Runtime + test and lint tools, pinned (what \`make venv\` installs). Produced by \`make lock\`:"; \
	  echo "#   uv pip compile pyproject.toml --extra test --extra lint -c requirements.lock --python-version 3.11 -o requirements-test.lock"; \
	  cat requirements-test.lock.new; } > requirements-test.lock && rm requirements-test.lock.new

# Python 3.12 and 3.13, each in its own venv (.venv-py3.x): a cross-section of the suite.
test-pythons:
	bash .ci/other-pythons.sh

# The container image (Dockerfile), built and smoke-tested: /healthz answers and --version prints.
image:
	bash .ci/image-smoke.sh

clean:
	rm -rf $(VENV) .venv-py* $(OUT) reportbot.db .pytest_cache .mypy_cache .ruff_cache

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
	$(MAKE) --no-print-directory browser-image
	rm -rf $(IMAGES)/.demo

# The browser view of ACME's report (reporting.html), screenshotted by headless Chromium.
browser-image: venv
	test -d $(IMAGES)/.demo || $(BIN)/reportbot demo --out $(IMAGES)/.demo >/dev/null
	$(BIN)/python -c 'import json, pathlib, sys; from reporting import snapshot; from reporting.html import render_html; \
	  from reporting.models import Branding; p = sorted(pathlib.Path(sys.argv[1]).glob("ACME/ACME-weekly-*.json"))[-1]; \
	  pathlib.Path(sys.argv[2]).write_text(render_html(snapshot.from_dict(json.loads(p.read_text())), \
	  Branding("Northwind Managed Services", "#1F4E79")))' $(IMAGES)/.demo $(IMAGES)/.demo/ACME.html
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1000,1500 \
	  "--host-resolver-rules=MAP * ~NOTFOUND" --screenshot=$(IMAGES)/ACME-browser.png \
	  file://$(abspath $(IMAGES))/.demo/ACME.html 2>/dev/null
