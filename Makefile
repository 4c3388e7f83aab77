# Two commands: `make run` and `make test`. Everything else is a helper of those.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test bench lint install migrate demo clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## Migrate, load the demo org once, then run web + worker + cron (Ctrl-C stops them all).
run: $(STAMP)
	$(PY) -m plutomi.launch

## The whole suite: lint, then every test on SQLite (and PostgreSQL when TEST_DATABASE_URL is set).
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -n auto -p no:cacheprovider --durations=15

## Benchmarks against a floor measured in the same run (PostgreSQL and Redis servers; see bench/README.md).
bench: $(STAMP)
	$(PY) -m bench.run

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check plutomi jobs tests wsgi.py

migrate: $(STAMP)
	FLASK_APP=wsgi $(VENV)/bin/flask db upgrade

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
