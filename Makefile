# The two commands a newcomer needs: `make lab` (a running stack in local containers) and `make test`
# (everything CI checks). Both install what they need: the control-node virtualenv from hash-locked
# requirements, a container engine where none answers, and the Debian base images.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Debian release of the nodes: 13 (default) or 12.
DEBIAN ?= 13
export LAB_DEBIAN_VERSION := $(DEBIAN)

.PHONY: help venv bench-venv engine browser images secrets lab lab-down lint test test-app test-package package collection bench-app bench test-control test-molecule

help:
	@echo "make lab       create the lab (one container per host of inventories/lab) and converge site.yml"
	@echo "make lab-down  remove the lab"
	@echo "make test      lint, the app's tests, control-node tests, then every molecule scenario (what CI runs)"
	@echo "make test-app  the shop's tests against real MariaDB/memcached/nginx (in a container)"
	@echo "make test-package  the django-stack package's tests (against the guestbook project), and its wheel"
	@echo "make collection    the Ansible collection's tarball in dist/"
	@echo "make bench-app the app's page-caching benchmark; report in app/bench/results/"
	@echo "make bench     benchmarks and fault injection against the lab (rebuilds it first); bench/results/"
	@echo "DEBIAN=12      on either, to run the nodes on Debian 12 instead of 13"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements/control.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/control.txt
	touch $@

# The benchmark's plotting library, beside the control node's packages (same versions of what both need).
bench-venv: $(VENV)/.bench-installed

$(VENV)/.bench-installed: $(VENV)/.installed requirements/bench.txt
	$(BIN)/pip install --quiet --require-hashes -r requirements/bench.txt
	touch $@

engine:
	scripts/ensure-engine.sh

# Debian's chromium, for the console page's test (molecule default).
browser:
	scripts/ensure-browser.sh

images: engine
	scripts/build-image.sh $(DEBIAN)

secrets:
	scripts/lab-secrets.sh

lab: venv images secrets
	ansible-playbook playbooks/lab-up.yml
	ansible-playbook site.yml
	@echo
	@echo "The lab is up. Load balancer: http://127.0.0.1:8080 and https://127.0.0.1:8443"
	@echo "A shell on a node: docker exec -it lab-web1 bash    Remove it all: make lab-down"

lab-down: venv
	ansible-playbook playbooks/lab-down.yml

lint: venv
	yamllint --strict .
	ansible-lint
	python scripts/role-interface.py
	antsibull-changelog lint

# The Django app's tests: pytest-django against a real MariaDB primary and replica, memcached and nginx, all
# started on the loopback of a throwaway container of the nodes' Debian release (scripts/app-test.sh).
test-app: engine
	scripts/app-test.sh pytest -q

# The django-stack package: its wheel (dist/), and its own tests against the guestbook project and real servers.
package: venv
	rm -rf dist/django_stack-*.whl django_stack/build
	pip wheel --quiet --no-deps ./django_stack -w dist
	rm -rf django_stack/build django_stack/src/*.egg-info
	ls dist/django_stack-*.whl

test-package: engine package
	APP_TEST_DIR=django_stack scripts/app-test.sh pytest -q

# The Ansible collection (galaxy.yml): dist/django_stack-stack-<version>.tar.gz.
collection: venv
	ansible-galaxy collection build --force --output-path dist .

bench-app: engine
	scripts/app-test.sh python -m bench.strategies

# Benchmarks and fault injection against the lab (bench/): rebuilds the lab from fresh containers to time a cold
# converge, then measures it; report and plots in bench/results/. BENCH_ARGS="--only strategies" for one part.
BENCH_ARGS ?=
bench: bench-venv images secrets
	python -m bench $(BENCH_ARGS)

# Control-node tests: no containers (the preflight checks against broken inventories).
# Side by side, one worker per CPU (pytest-xdist): the tests share no file (each writes in its own temporary folder).
CONTROL_TESTS := pytest -q -n auto tests
test-control: venv collection
	$(CONTROL_TESTS)

# Every molecule scenario, one after the other.
test-molecule: venv images secrets collection browser
	molecule test --all

# Everything CI checks, in two lanes side by side (scripts/side-by-side.sh, each line prefixed with its lane):
# - default: molecule's default scenario, the longest (its verify step mostly waits: timers, health checks, canary
#   watches, alerts: a core idle much of the time);
# - checks: lint, the app's tests, the package's, the control-node tests, then molecule's db scenario.
# The scenarios share no container, network, port or release file. The collection is built once, before both
# (molecule's default scenario installs it). One after the other, they took 50 minutes on two CPUs.
# (make's own name through a variable of ours: with $(MAKE) in it, `make -n test` would run the whole line.)
LANE_MAKE := $(MAKE) --no-print-directory
test: venv images secrets collection browser
	scripts/side-by-side.sh \
	  'default=molecule test -s default' \
	  'checks=$(LANE_MAKE) lint test-app test-package && $(CONTROL_TESTS) && molecule test -s db'
