# edgecloud: the two commands that set up a fresh machine are `make run` and `make test`.
# Both install what is missing first: Debian packages with apt-get, Python packages into .venv.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
# What hosts need (QEMU, LXC, sshd, nftables, socat, FRR for EVPN; busybox's ping for the
# network tests; the system python3 with python3-apt, sysctl and modprobe for the host
# playbook) and what the suite starts
# (PostgreSQL's initdb/pg_ctl; Debian's Chromium for the console's browser tests, driven by
# Playwright with the system binary: no browser download). Each is installed only when missing.
HOST_DEBS   := qemu-system-x86:qemu-system-x86_64 qemu-utils:qemu-img lxc:lxc-start \
               openssh-server:/usr/sbin/sshd openssh-client:ssh socat:socat nftables:nft \
               iproute2:ip cpio:cpio frr:/usr/lib/frr/bgpd busybox:busybox \
               python3:/usr/bin/python3 python3-apt:/usr/lib/python3/dist-packages/apt \
               procps:/sbin/sysctl kmod:/sbin/modprobe

.PHONY: run test test-fast lint typecheck bench clean help .debs-test .debs-host .host-setup

help:
	@echo "make run    start the front-end (SQLite, this machine as a host); prints URL and credentials"
	@echo "make test   install what is missing and run lint, type checks and the whole suite"
	@echo "make bench  run the API benchmark (bench/api.py) on SQLite and PostgreSQL"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

.debs-host:
	@missing=""; \
	for pair in $(HOST_DEBS); do \
	  pkg=$${pair%%:*}; cmd=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || test -x $$cmd || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Unprivileged containers need a subordinate id range for root (LXC maps container ids
# into it); a fresh Debian gives root none.
.host-setup: .debs-host
	@grep -q '^root:' /etc/subuid 2>/dev/null || usermod --add-subuids 100000-165535 root
	@grep -q '^root:' /etc/subgid 2>/dev/null || usermod --add-subgids 100000-165535 root

.debs-test: .host-setup
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -x /usr/bin/chromedriver || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

run: $(STAMP) .host-setup
	$(BIN)/edgecloud up --local-host

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) .debs-test lint typecheck
	$(BIN)/pytest -q

test-fast: $(STAMP)
	EDGECLOUD_TEST_SKIP_PG=1 $(BIN)/pytest -q -x

bench: $(STAMP) .debs-test
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
