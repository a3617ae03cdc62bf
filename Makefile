# The README's two commands: `make demo` and `make test`. Each builds what it needs on a fresh machine.
# First interpreter of each version that really runs (pyenv shims exist for versions not enabled).
find_python = $(firstword $(foreach p,$(1),$(shell $(p) -c 'import sys; print(sys.executable)' 2>/dev/null)))
PYTHON   ?= $(call find_python,python3.11 $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python3.11) python3)
PYTHON39 ?= $(call find_python,python3.9 $(wildcard $(HOME)/.pyenv/versions/3.9*/bin/python3.9))
VENV     := .venv
VENV39   := .venv39
OUT      ?= out/demo
WEB_DEPS := Testing/web/node_modules/.package-lock.json

.PHONY: demo test lint venv clean

demo: $(VENV)/.installed
	$(VENV)/bin/sibspine demo --out $(OUT)

test: $(VENV)/.installed $(WEB_DEPS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest -q
	@$(MAKE) --no-print-directory test39

# The library must also run on Python 3.9 with Slicer 5.6/5.8's numpy and scipy: run every test that
# needs no slicer-core there.
test39:
	@if [ -z "$(PYTHON39)" ]; then echo "ERROR: python3.9 not found; it is needed to check Slicer 5.6/5.8 compatibility." >&2; exit 1; fi
	@$(MAKE) --no-print-directory $(VENV39)/.installed
	$(VENV39)/bin/python -m pytest -q -m "not mrml" -p no:cacheprovider

# The web demo's e2e test: Chromium, Mesa EGL (offscreen VTK), Node.js >= 20 and playwright-core (no browser download).
$(WEB_DEPS): Testing/web/package.json Testing/web/package-lock.json
	@if ! command -v chromium >/dev/null 2>&1 || ! ldconfig -p | grep -q 'libEGL.so.1 '; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium libegl1 libegl-mesa0 libgl1-mesa-dri; \
	  else echo "ERROR: the web e2e test needs: sudo apt-get install -y chromium libegl1 libegl-mesa0 libgl1-mesa-dri" >&2; exit 1; fi; \
	fi
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' 2>/dev/null || { echo "ERROR: the web e2e test needs Node.js >= 20 (Debian 12's nodejs is 18; NodeSource nodejs 20 works)." >&2; exit 1; }
	npm ci --prefix Testing/web --no-audit --no-fund
	touch $@

$(VENV)/.installed: requirements/py311.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements/py311.lock
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

$(VENV39)/.installed: requirements/py39.lock
	$(PYTHON39) -m venv $(VENV39)
	$(VENV39)/bin/pip install -q -r requirements/py39.lock
	touch $@

clean:
	rm -rf $(VENV) $(VENV39) out Testing/web/node_modules
