# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv themselves.
# .venv's interpreter: the distribution's /usr/bin/python3 when it is 3.10+ with venv, else python3 on PATH
# (PYTHON=... overrides). A CPython built from source without --enable-optimizations (pyenv's default) runs all
# of the tool's Python -- the catch-up, Ansible and every Ansible module it runs -- about a third slower on the
# same machine (2026-12-02, this machine: a CPU-bound loop 1.85 s vs 1.34 s, one Ansible module 0.49 s vs 0.33 s).
PYTHON ?= $(shell /usr/bin/python3 -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 10))' \
                  2>/dev/null && echo /usr/bin/python3 || echo python3)
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
