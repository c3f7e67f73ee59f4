# The README's commands. Every target installs what it needs first.
.PHONY: install services-up services-down test lint demo demo-stop bench dashboards

DETACH ?=

install:
	scripts/bootstrap.sh
	scripts/services.sh install

services-up: install
	scripts/services.sh start

services-down:
	scripts/services.sh stop

test:
	scripts/test.sh

lint: install
	uv run --frozen ruff check src tests bench deploy
	uv run --frozen ruff format --check src tests bench deploy
	uv run --frozen mypy --strict src

demo:
	scripts/demo.sh $(if $(DETACH),--detach,)

demo-stop:
	scripts/demo.sh --stop

bench: services-up
	uv run --frozen python bench/read_bench.py

dashboards: install
	uv run --frozen python deploy/grafana/generate.py
