# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[lab,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/splitter demo

test: $(STAMP)
	$(BIN)/ruff check splitter tests $(wildcard bench)
	$(BIN)/ansible-lint --profile production --offline playbooks/
	$(BIN)/python -m pytest -q -ra -n 4 --dist loadfile --no-loadscope-reorder --durations=25

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
