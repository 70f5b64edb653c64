PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the codecs' decoding modules compiled with mypyc (setup.py); the list of what was built
CODECS_BUILT := sinogate/codecs/_compiled.txt
CODEC_SOURCES := $(wildcard sinogate/codecs/h02/*.py sinogate/codecs/jt808/*.py)

.PHONY: install run test bench lint clean vendor

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Compiling never fails the install: without mypyc or a C compiler the codecs stay pure Python.
$(CODECS_BUILT): $(STAMP) setup.py $(CODEC_SOURCES)
	$(BIN)/python setup.py -q build_ext --inplace || echo "codecs not compiled: they run as pure Python"
	touch $@

install: $(STAMP) $(CODECS_BUILT)

run: $(STAMP) $(CODECS_BUILT)
	$(BIN)/sinogate serve

test: $(STAMP) $(CODECS_BUILT)
	bash scripts/test-services.sh
	$(BIN)/ruff check .
	$(BIN)/mypy sinogate
	$(BIN)/pytest
	SINOGATE_PURE_CODECS=1 $(BIN)/pytest tests/codecs  # the codecs again, as pure Python

bench: $(STAMP) $(CODECS_BUILT)
	$(BIN)/python bench/decode.py
	@for b in api commands ingest recalc; do \
		if [ -f bench/$$b.py ]; then echo; echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; fi; \
	done

# Refresh the web app's browser libraries (Leaflet, markercluster, leaflet-geoman, Swagger UI) from
# the npm registry into sinogate/web/vendor/ (versions pinned in the script; needs npm).
vendor:
	sh sinogate/web/vendor/refresh.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy sinogate

clean:
	rm -rf $(VENV) build *.egg-info $(CODECS_BUILT)
	find sinogate -name '*.so' -delete
