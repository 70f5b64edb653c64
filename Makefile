PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the hot path compiled with mypyc (setup.py: the codecs' decoding, the pipeline); what was built
NATIVE_BUILT := sinogate/codecs/_compiled.txt sinogate/pipeline/_compiled.txt
NATIVE_SOURCES := $(wildcard sinogate/codecs/h02/*.py sinogate/codecs/jt808/*.py sinogate/pipeline/*.py) \
	sinogate/analytics/geo.py sinogate/analytics/intervals.py sinogate/store/telemetry.py

.PHONY: install run test bench lint clean vendor

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Compiling never fails the install: without mypyc or a C compiler everything stays pure Python.
$(NATIVE_BUILT) &: $(STAMP) setup.py $(NATIVE_SOURCES)
	$(BIN)/python setup.py -q build_ext --inplace || echo "not compiled: everything runs as pure Python"
	touch $(NATIVE_BUILT)

install: $(STAMP) $(NATIVE_BUILT)

run: $(STAMP) $(NATIVE_BUILT)
	$(BIN)/sinogate serve

test: $(STAMP) $(NATIVE_BUILT)
	bash scripts/test-services.sh
	$(BIN)/ruff check .
	$(BIN)/mypy sinogate
	$(BIN)/pytest
	SINOGATE_PURE_PYTHON=1 $(BIN)/pytest tests/codecs tests/pipeline tests/analytics tests/store/test_telemetry_table.py \
		tests/test_native.py  # what may run compiled, again as pure Python

bench: $(STAMP) $(NATIVE_BUILT)
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
	rm -rf $(VENV) build *.egg-info $(NATIVE_BUILT)
	find sinogate -name '*.so' -delete
