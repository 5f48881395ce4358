# keel: `make up` sets up this machine and converges a local sandbox; `make test` runs the suite.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# What the controller needs from Debian: podman hosts, the image builds, age, ssh, QEMU VMs.
SYSTEM_PACKAGES := podman runc crun debootstrap age openssh-client ca-certificates \
  qemu-system-x86 qemu-utils genisoimage
# Test modules run in parallel (each starts its own hosts); most time is I/O wait.
PYTEST_ARGS ?= -n 3 --dist loadfile --no-loadscope-reorder --basetemp=.keel/pytest
# Roles whose molecule scenario `make molecule` runs: all that have one, unless given.
MOLECULE_ROLES ?= $(patsubst roles/%/molecule/default/molecule.yml,%,\
  $(wildcard roles/*/molecule/default/molecule.yml))

.PHONY: up vm setup system limits venv image test test-faults test-vm lint bench bench-release down molecule

up: setup image
	$(BIN)/keel sandbox up prod
	$(BIN)/keel secrets init sandbox
	$(BIN)/keel ca ensure sandbox >/dev/null
	$(BIN)/keel secrets ensure sandbox inventories/sandbox.py
	$(BIN)/pyinfra -y inventories/sandbox.py deploys/site.py
	$(BIN)/keel check sandbox

# The whole site on one bare VM (QEMU without KVM: slow), bootstrapped like a cloud host.
vm: setup
	$(BIN)/keel vm up
	$(BIN)/keel secrets init vm
	$(BIN)/keel ca ensure vm >/dev/null
	$(BIN)/keel secrets ensure vm inventories/vm.py
	$(BIN)/pyinfra -y inventories/vm.py deploys/site.py

setup: system venv limits

# Every sandbox host's systemd holds several inotify instances, and all of root's containers
# share the kernel's default of 128: past it, hosts fail to boot ("Too many open files").
limits:
	@if [ "$$(cat /proc/sys/fs/inotify/max_user_instances)" -lt 1024 ]; then \
	  $(SUDO) sysctl -q -w fs.inotify.max_user_instances=1024; fi

system: .keel/system.stamp
.keel/system.stamp: Makefile
	@mkdir -p .keel
	@if ! dpkg-query -W $(SYSTEM_PACKAGES) >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    $(SYSTEM_PACKAGES); \
	fi
	@touch $@

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

image: setup
	$(BIN)/keel sandbox image

test: setup image
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not vm and not faults" $(PYTEST_ARGS)

# Hosts stopped mid-run (tests/test_faults.py): several converges of base, too slow for `test`.
test-faults: setup image
	$(BIN)/pytest -m faults --basetemp=.keel/pytest-faults tests/test_faults.py

# The whole site on a bare VM under QEMU/TCG (tests/test_vm.py): too slow for `make test`.
test-vm: setup
	$(BIN)/pytest -m vm --basetemp=.keel/pytest-vm tests/test_vm.py

# Every role's scenario, run as a developer runs it: cd roles/<name> && molecule test.
molecule: setup image
	@failed=""; for role in $(MOLECULE_ROLES); do \
	  start=$$(date +%s); echo "== molecule test: $$role"; \
	  (cd roles/$$role && PATH="$(abspath $(BIN)):$$PATH" molecule test) || failed="$$failed $$role"; \
	  echo "== $$role: $$(( $$(date +%s) - start )) s"; \
	done; \
	if [ -n "$$failed" ]; then echo "molecule failed:$$failed"; exit 1; fi

lint: venv
	$(BIN)/ruff check .

# Not part of `test`: starts up to 20 sandbox hosts (b-*); about 70 min here (README).
BENCH_ARGS ?=
bench: setup image
	$(BIN)/python bench/converge.py $(BENCH_ARGS)

# Release times per host (drain, gate, canary hold) on 2 sandbox hosts (r-*); about 10 min.
bench-release: setup image
	$(BIN)/python bench/release.py $(BENCH_ARGS)

down: venv
	$(BIN)/keel sandbox down
