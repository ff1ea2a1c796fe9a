# `make run` sets up .venv and starts the daemon on its defaults;
# `make test` sets up .venv and runs the suite. Both are idempotent: the
# install step reruns only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install browser run test test-fast lint docs fixtures bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# The browser tests (tests/test_dashboard.py) drive Debian's headless Chromium through chromium-driver.
# Installed here when missing, as root; without root, make stops and prints the one command to run.
BROWSER_PACKAGES := chromium chromium-driver
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "browser: chromium and chromedriver are installed"; \
	elif [ "$$(id -u)" -eq 0 ]; then \
		echo "browser: installing $(BROWSER_PACKAGES) with apt-get (for the dashboard's browser tests)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BROWSER_PACKAGES); \
	else \
		echo "browser: chromium and chromedriver are missing, and installing them needs root. Run:"; \
		echo "    sudo apt-get install -y --no-install-recommends $(BROWSER_PACKAGES)"; \
		echo "then make test again."; \
		exit 1; \
	fi

run: install
	$(VENV)/bin/vision-evald

# Four pytest processes on two cores: the real-daemon tests spend much of their time waiting on child
# processes; whole modules go to one process each (--dist loadfile), so a module's daemon is shared,
# in collection order (--no-loadscope-reorder: tests/conftest.py puts the longest modules first).
# PYTHONDONTWRITEBYTECODE is emptied for the run (an environment may set it): the suite starts some 150
# Python processes (daemons, workers, CLI calls), and each would compile this project's modules anew.
# OMP_NUM_THREADS=1: one torch thread per process (pytest processes, daemons' workers, CLI calls inherit
# it). Four processes with torch's default of one thread per core would run 8 threads on 2 cores, and
# OpenMP threads spin while they wait: measured, about 35 s of CPU and 15-30 s of the run lost to it.
test: install browser
	PYTHONDONTWRITEBYTECODE= OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 4 --dist loadfile --no-loadscope-reorder

# ruff (rule set explained in pyproject.toml) and mypy over the packages; .ci/run runs it before the tests.
lint: install
	$(VENV)/bin/ruff check daemon handlers store evaluation vision_eval vocab tests benchmarks
	$(VENV)/bin/mypy

# No real daemon, no worker, no torch: the in-process logic in well under a minute.
test-fast: install
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -q -n 2 -m "not heavy"

# The generated parts of docs/ (the config, metrics and API tables) rewritten from the code; tests/test_docs.py
# fails when they are out of date. Phony: the target shares its name with the docs/ folder.
docs: install
	$(PY) docs/generate.py

# The committed test checkpoints: detection's (make_fixtures.py), then segmentation's, pose's and obb's
# (make_task_fixtures.py, several minutes of CPU training).
fixtures: install
	$(PY) tests/fixtures/make_fixtures.py
	$(PY) tests/fixtures/make_task_fixtures.py

bench: install
	$(PY) benchmarks/eval_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
