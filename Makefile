# Set-up and the two jobs of the README. `make demo` and `make test` each create the virtual
# environment on first use (.venv), install boltzkit into it, then run.
PYTHON ?= python3
VENV ?= .venv
# PyTorch to install. The default pins the release this project is tested with; on a CUDA machine
# pass the build for your platform, e.g. `make demo TORCH="torch"` (see README, "GPU").
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: demo test test-slow bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q "$(TORCH)"
	$(VENV)/bin/python -m pip install -q -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/boltzkit train

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

test-slow: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -m slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
