PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench lint clean vendor

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/sinogate serve

test: $(STAMP)
	bash scripts/test-services.sh
	$(BIN)/ruff check .
	$(BIN)/mypy sinogate
	$(BIN)/pytest

bench: $(STAMP)
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
	rm -rf $(VENV) build *.egg-info
