# Quick start: `make demo` runs the service on the bundled simulator; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test demo sim lint bench bench-smoke soak faults-long failover-defaults clean

install: $(STAMP)

# A venv left half-made (no pip: python3-venv was missing) is made again, after installing that package.
$(STAMP): pyproject.toml
	@test -x $(BIN)/pip || { PYTHON=$(PYTHON) scripts/ensure-services --binaries venv && rm -rf $(VENV) \
		&& $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

test: install
	scripts/ensure-services redis postgres
	$(BIN)/pytest -q

# The demo runs a redis-server of its own (127.0.0.1:8766): only the binary is needed.
demo: install
	@command -v redis-server >/dev/null 2>&1 || scripts/ensure-services --binaries redis
	$(BIN)/tickerctl demo

# The full benchmark (~17 min): docs/benchmarks.md explains it; raw output in docs/benchmarks-raw.
bench: install
	scripts/ensure-services redis
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python scripts/bench.py --private-redis --out docs/benchmarks-raw

bench-smoke: install
	scripts/ensure-services redis
	$(BIN)/pytest -q tests/bench

# A long soak (default 30 min; SOAK_SECONDS, SOAK_RATE, SOAK_SYMBOLS): memory, descriptors, tasks.
soak: install
	scripts/ensure-services redis
	SOAK_SECONDS=$${SOAK_SECONDS:-1800} SOAK_REPORT=$${SOAK_REPORT:-docs/soak-report.json} \
		$(BIN)/pytest -q -s tests/soak

# The fault matrix with the issue's 30 s outages (make test uses 8 s).
faults-long: install
	scripts/ensure-services redis postgres
	FAULT_OUTAGE_S=30 $(BIN)/pytest -q -s tests/faults

# the several-hosts tests with the default lease (5 s) and host (3 s) TTLs: the README's failover figures
failover-defaults: install
	scripts/ensure-services redis
	CLUSTER_LEASE_TTL=5 CLUSTER_HOST_TTL=3 $(BIN)/pytest -q tests/cluster

sim: install
	$(BIN)/tickerctl sim

# By hand, not part of `make test` (docs/deployment.md has the results). Each skips with one line
# where no container engine can run.
.PHONY: container-test fresh-test
# The image built and run for real: PID 1, read-only root, tickers, HEALTHCHECK, stop, titles (~1 min).
container-test: install
	scripts/container-test

# The quick start on a fresh Debian container: a clone of the committed HEAD, `make demo`, `make test` (~30 min).
fresh-test:
	scripts/fresh-test

lint: install
	$(BIN)/ruff check src tests examples scripts/*.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
