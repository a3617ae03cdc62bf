# The README's two commands: `make demo` and `make test`. Each builds what it needs on a fresh machine.
# First interpreter of each version that really runs (pyenv shims exist for versions not enabled).
find_python = $(firstword $(foreach p,$(1),$(shell $(p) -c 'import sys; print(sys.executable)' 2>/dev/null)))
PYTHON   ?= $(call find_python,python3.11 $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python3.11) python3)
PYTHON39 ?= $(call find_python,python3.9 $(wildcard $(HOME)/.pyenv/versions/3.9*/bin/python3.9))
PYTHON312 ?= $(call find_python,python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12))
VENV     := .venv
VENV39   := .venv39
VENV312  := .venv312
OUT      ?= out/demo
WEB_DEPS := Testing/web/node_modules/.package-lock.json

.PHONY: demo test test39 test312 lint venv clean

demo: $(VENV)/.installed
	$(VENV)/bin/sibspine demo --out $(OUT)

test: $(VENV)/.installed $(WEB_DEPS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest -q
	@$(MAKE) --no-print-directory test39
	@$(MAKE) --no-print-directory test312

# The library must also run in the Python of each Slicer release line: every test that needs no slicer-core
# runs on Python 3.9 with Slicer 5.6/5.8's packages and on Python 3.12 with Slicer 5.10's (numpy 2.0.2,
# pydicom 2.4.4). A missing interpreter skips its pass with a notice; on CI (CI=true) it is an error.
# $(call compat_skipped,VERSION,SLICER RELEASES,VARIABLE)
define compat_skipped
	@if [ "$$CI" = true ]; then \
	  echo "ERROR: python$(1) not found; CI must run the Slicer $(2) compatibility pass (make test$(subst .,,$(1)))." >&2; exit 1; fi
	@echo "" >&2
	@echo "********************************************************************************************" >&2
	@echo "*** SKIPPED: the Python $(1) pass (Slicer $(2) compatibility): python$(1) not found." >&2
	@echo "*** make test runs everything else. To run this pass: pyenv install $(1) (or your system's python$(1) package)," >&2
	@echo "*** or point $(3)=/path/to/python$(1), then: make test$(subst .,,$(1))" >&2
	@echo "********************************************************************************************" >&2
endef

ifeq ($(PYTHON39),)
test39:
	$(call compat_skipped,3.9,5.6/5.8,PYTHON39)
else
test39: $(VENV39)/.installed
	$(VENV39)/bin/python -m pytest -q -m "not mrml" -p no:cacheprovider
endif

ifeq ($(PYTHON312),)
test312:
	$(call compat_skipped,3.12,5.10,PYTHON312)
else
test312: $(VENV312)/.installed
	$(VENV312)/bin/python -m pytest -q -m "not mrml" -p no:cacheprovider
endif

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

$(VENV312)/.installed: requirements/py312.lock
	$(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/pip install -q -r requirements/py312.lock
	touch $@

clean:
	rm -rf $(VENV) $(VENV39) $(VENV312) out Testing/web/node_modules
