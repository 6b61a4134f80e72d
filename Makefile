# Unit Lens: `make run` (set up, then the dashboard) and `make test` (set up, then every test).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FMNIST := data/FashionMNIST/raw/t10k-labels-idx1-ubyte

.PHONY: setup data browser run test test-fast bench clean-cache

setup: $(STAMP) $(FMNIST)

# Reinstalls only when a requirements file changed.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

data: $(FMNIST)
$(FMNIST): | $(STAMP)
	$(PY) -m core.data prepare

# Debian's Chromium for the end-to-end test (never a browser download of Playwright's own).
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) ; } || \
	  echo "warning: /usr/bin/chromium missing; the browser test will be skipped"

run: setup
	$(PY) -m streamlit run app.py

test: setup browser
	$(PY) -m pytest

# the quick loop while working: everything but the browser and the long trainings
test-fast: setup
	$(PY) -m pytest -m "not slow"

bench: setup
	$(PY) bench/train_throughput.py
	$(PY) bench/analysis_speed.py
	$(PY) bench/ui_latency.py

clean-cache:
	rm -f cache/unitlens.duckdb cache/unitlens.duckdb.wal
