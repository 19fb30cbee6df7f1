# virgl-viewer: `make run` and `make test` do all the setup on a fresh Debian 12 or 13
# (the package names below exist in both; `make test-trixie` checks 13).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_APT := $(VENV)/.apt-stamp
STAMP_PIP := $(VENV)/.pip-stamp
STAMP_DEV := $(VENV)/.dev-stamp
WHEELHOUSE := build/wheelhouse
VK_CHECK := build/vk_check
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# clang and its libFuzzer/sanitizer runtimes for the fuzz targets (Debian 12: 14)
# the clang (libFuzzer, sanitizers) of the release: 14 on Debian 12, 19 on Debian 13
CLANG_VERSION ?= $(shell . /etc/os-release 2>/dev/null; [ "$$VERSION_CODENAME" = bookworm ] && echo 14 || echo 19)
export CLANG_VERSION
FUZZ_SECONDS ?= 60
# The venus tests (pytest marker venus) need libvirglrenderer 1.x with virgl_render_server
# and Mesa's venus ICD: Debian 13. Debian 12 has neither (Mesa 25's venus refuses 0.10.4),
# so there they are deselected, and the run says so (tests/conftest.py).
VENUS_TESTS ?= $(shell . /etc/os-release 2>/dev/null; [ "$$VERSION_CODENAME" = bookworm ] && echo deselect || echo run)
FUZZ_TARGETS ?=

APT_PACKAGES := build-essential pkg-config python3-dev python3-venv \
	libvirglrenderer1 libvirglrenderer-dev virgl-server \
	libegl1 libegl-dev libgles-dev libgl-dev libopengl0 libopengl-dev libepoxy-dev libgl1-mesa-dri \
	mesa-utils glmark2-x11 glmark2-es2-x11 piglit apitrace xvfb xauth x11-utils \
	libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-image0 \
	libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 \
	libfontconfig1 libdbus-1-3 fonts-dejavu-core \
	weston libwayland-client0 libwayland-cursor0 libwayland-egl1 libxkbcommon0 \
	clang-$(CLANG_VERSION) libclang-rt-$(CLANG_VERSION)-dev \
	libasan8 libubsan1
# packaging tests: the validators and installers a user's desktop and tools run
APT_PACKAGES += desktop-file-utils appstream man-db pipx binutils
# Vulkan guests (venus): the loader and ICDs (lavapipe; the virtio/venus ICD on Debian 13),
# vulkaninfo, and what tests/vulkan/ builds its program with (headers, GLSL -> SPIR-V)
APT_PACKAGES += mesa-vulkan-drivers libvulkan1 libvulkan-dev vulkan-tools glslang-tools

.PHONY: all setup run test test-asan test-fast test-trixie test-bookworm conformance conformance-ci bench bench-venus bench-trixie conformance-trixie lint clean native fuzz

all: setup

# apt: only what is missing, so a prepared machine is not slowed down.
$(STAMP_APT): Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing $$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@touch $@

$(STAMP_PIP): $(STAMP_APT) pyproject.toml setup.py native/*.c native/*.h native/build_native.py
	$(PY) -m pip install -q --upgrade pip setuptools wheel cffi
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

setup: $(STAMP_PIP) build/vtest_redirect.so $(WHEELHOUSE)/.stamp $(VK_CHECK)

native: $(STAMP_PIP)

# Wheels of what pyproject.toml's build and install need from PyPI, so that the packaging
# tests build and install the wheel (isolated, as users do) from them without the network
# (the Debian lanes run `make test` with loopback only). Refilled when pyproject changes.
$(WHEELHOUSE)/.stamp: pyproject.toml packaging/wheelhouse.py | $(STAMP_PIP)
	$(PY) packaging/wheelhouse.py $(WHEELHOUSE)
	@touch $@

# LD_PRELOAD shim: lets Mesa 22.3.6 clients (hard-coded /tmp/.virgl_test)
# reach a server on $$VTEST_SOCKET_NAME, so tests never touch the default path.
build/vtest_redirect.so: native/vtest_redirect.c $(STAMP_APT)
	@mkdir -p build
	cc -O2 -Wall -shared -fPIC -o $@ $< -ldl

# The Vulkan guest of the venus tests and bench (tests/vulkan/vk_check.c): the release's
# compiler and Vulkan headers, its shaders compiled by glslang into SPIR-V headers.
build/vulkan/%_vert.h: tests/vulkan/%.vert $(STAMP_APT)
	@mkdir -p build/vulkan
	glslangValidator -V --vn $*_vert -o $@ $< >/dev/null
build/vulkan/%_frag.h: tests/vulkan/%.frag $(STAMP_APT)
	@mkdir -p build/vulkan
	glslangValidator -V --vn $*_frag -o $@ $< >/dev/null
build/vulkan/%_comp.h: tests/vulkan/%.comp $(STAMP_APT)
	@mkdir -p build/vulkan
	glslangValidator -V --vn $*_comp -o $@ $< >/dev/null
$(VK_CHECK): tests/vulkan/vk_check.c build/vulkan/pattern_vert.h build/vulkan/pattern_frag.h \
		build/vulkan/probe_frag.h \
		build/vulkan/square_comp.h
	cc -O2 -Wall -Wextra -Werror -std=c11 -D_POSIX_C_SOURCE=200809L -Ibuild/vulkan -o $@ $< -lvulkan

run: setup
	$(VENV)/bin/virgl-viewer $(ARGS)

# The suite starts its own virtual X servers (tests/support/xvfb.py): one for the
# whole run (Qt windows need a display with EGL), private ones for screenshots. A process
# has one Qt platform, so the tests marked wayland run in a second session under their own
# weston (headless backend, GL renderer: tests/support/weston.py); each session deselects
# the other's tests. Both always run; either failing fails the target.
# $(2): an environment to run both in (test-asan's)
PYTEST_SESSIONS = rc=0; $(2) $(PY) -m pytest -ra $(1) || rc=$$?; \
	VV_TEST_DISPLAY=wayland $(2) $(PY) -m pytest -ra $(1) || rc=$$?; exit $$rc

test: setup
	@$(call PYTEST_SESSIONS,--venus=$(VENUS_TESTS) $(PYTEST_ARGS))

# The same suite against the binding built with ASan and UBSan (build/asan/; the normal
# build beside the sources is left alone). Every Python process of the run, the servers,
# viewers and guests the tests start included, inherits the environment below: the
# runtime of the compiler that built it preloaded, CPython's own allocator off so ASan
# sees every allocation, and tests/asan/sitecustomize.py, which makes `import
# virgl_viewer._native` load the sanitized build. A report aborts the process and is
# written to build/asan/reports/, which fails the run even when a test expected the
# process to die. detect_leaks=0: tried on tests/integration and tests/ui, LeakSanitizer
# wrote 95 reports at exit, none with a frame of ours: cffi's module init, CPython's GC,
# Xvfb's xkbcomp, and in 94 of them frames of a library already unloaded ("<unknown
# module>", which no suppression can name). A suppression matches any frame of a stack
# and every allocation of ours has CPython below it, so broad ones would hide ours too.
# The tests assert that fds, mappings and memory return to baseline, and `make fuzz`
# runs vv_fast.c and vv_rewrite.c under LeakSanitizer. handle_segv=0: the renderer-crash
# tests send SIGSEGV to a renderer process on purpose, and ASan's handler would turn
# each into a report and an exit status (the test expects the signal); a real fault
# still kills the process and fails its test, and ASan reports a bad access before it
# faults.
ASAN_CC ?= gcc
ASAN_DIR := build/asan
ASAN_REPORTS := $(ASAN_DIR)/reports
ASAN_SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_NATIVE = $(CURDIR)/$(ASAN_DIR)/virgl_viewer/_native$(shell $(PY) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
ASAN_ENV = LD_PRELOAD=$(shell $(ASAN_CC) -print-file-name=libasan.so):$(shell $(ASAN_CC) -print-file-name=libubsan.so) \
	PYTHONMALLOC=malloc PYTHONPATH=$(CURDIR)/tests/asan VV_NATIVE_MODULE=$(ASAN_NATIVE) \
	ASAN_OPTIONS=detect_leaks=0:handle_segv=0:abort_on_error=1:halt_on_error=1:log_path=$(CURDIR)/$(ASAN_REPORTS)/asan \
	UBSAN_OPTIONS=print_stacktrace=1:abort_on_error=1:halt_on_error=1:log_path=$(CURDIR)/$(ASAN_REPORTS)/ubsan

$(ASAN_DIR)/.stamp: $(STAMP_PIP) native/*.c native/*.h native/build_native.py
	@mkdir -p $(ASAN_DIR)
	CC=$(ASAN_CC) $(PY) native/build_native.py --out $(ASAN_DIR) \
	  --cflags "-O1 -g $(ASAN_SANITIZE)" --ldflags "$(ASAN_SANITIZE)" >$(ASAN_DIR).log 2>&1 \
	  || { cat $(ASAN_DIR).log; exit 1; }
	@touch $@

test-asan: setup $(ASAN_DIR)/.stamp
	@rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS)
	@$(ASAN_ENV) $(PY) -c 'import virgl_viewer._native as n, sys; sys.exit(n.__file__ != sys.argv[1])' \
	  $(ASAN_NATIVE) || { echo "test-asan: the sanitized binding is not the one imported"; exit 1; }
	($(call PYTEST_SESSIONS,--venus=$(VENUS_TESTS) $(PYTEST_ARGS),$(ASAN_ENV))); status=$$?; \
	if [ -n "$$(ls -A $(ASAN_REPORTS))" ]; then \
	  for f in $(ASAN_REPORTS)/*; do echo "===== $$f"; cat "$$f"; done; \
	  echo "test-asan: sanitizer reports above (also in $(ASAN_REPORTS)/)"; exit 1; \
	fi; exit $$status

test-fast: setup
	@$(call PYTEST_SESSIONS,--venus=$(VENUS_TESTS) -m 'not mesa and not slow' $(PYTEST_ARGS))

# The Debian 13 lane (virglrenderer 1.1, Mesa 25, Python 3.13): a debootstrapped trixie
# root, cached in build/roots/, copied fresh for each run; in it a new user runs the
# README's commands on `git archive HEAD` (packaging/roots/lane.sh). Needs root or sudo
# (debootstrap, mounts). CI runs it whole, after `make test`: 8.5 to 12 minutes measured
# on our shared 2-core machines (debootstrap 0.5 when not cached, apt + pip + binding
# 4-6, the suite 4-6), well inside CI's 90.
test-trixie:
	packaging/roots/lane.sh trixie test "PYTEST_ARGS=$(PYTEST_ARGS)"

# The bench and the piglit conformance in the same lane: ours against Debian 13's own
# virgl_test_server (1.1, Mesa 25 guests), in a fresh root as for test-trixie; ARGS=,
# VIEWER_ARGS= go to the scripts as with `make bench` / `make conformance` (default:
# every bench, 5 rounds; the dev list through both servers, ours held against
# upstream's results of the same run, as Debian 12's reference file is not 13's).
# Output in build/roots/trixie-bench.log / trixie-conformance.log.
TRIXIE_CONFORMANCE_ARGS ?= --server both
bench-trixie:
	packaging/roots/lane.sh trixie bench "ARGS=$(ARGS)" "VIEWER_ARGS=$(VIEWER_ARGS)"

conformance-trixie:
	packaging/roots/lane.sh trixie conformance "ARGS=$(TRIXIE_CONFORMANCE_ARGS) $(ARGS)"

# The Debian 12 lane: the same in a fresh bookworm root, RUNS times in a row (each run
# from a fresh copy of the debootstrapped root; default 1), all at the commit HEAD was
# when it started (commits made meanwhile do not reach later runs).
RUNS ?= 1
test-bookworm:
	rev=$$(git rev-parse HEAD); for i in $$(seq $(RUNS)); do \
	  LANE_REV=$$rev packaging/roots/lane.sh bookworm test "PYTEST_ARGS=$(PYTEST_ARGS)"; rc=$$?; \
	  cp build/roots/bookworm-test.log build/roots/bookworm-test.run$$i.log; \
	  [ $$rc = 0 ] || exit 1; \
	  echo "bookworm lane run $$i of $(RUNS) at $${rev:0:7}: $$(tail -n 1 build/roots/bookworm-test.log)"; \
	done

conformance: setup
	$(PY) bench/conformance.py $(ARGS)

conformance-ci: setup
	$(PY) bench/conformance.py --slice ci $(ARGS)

bench: setup
	$(PY) bench/run_bench.py $(ARGS)
	$(PY) bench/viewer_bench.py $(VIEWER_ARGS)

# Vulkan guests (venus) through our server against virgl_test_server --venus, alternating
# (Debian 13: libvirglrenderer 1.1 with virgl_render_server; VENUS_ARGS= goes to the script)
bench-venus: setup
	$(PY) bench/venus_bench.py $(VENUS_ARGS)

# Every fuzz target (tests/fuzz/; or some of FUZZ_TARGETS="engine rewrite codec server
# server-process") for
# FUZZ_SECONDS in total; fails on a crash, leak or hang, and prints executions and
# coverage per target.
fuzz: setup
	CLANG_VERSION=$(CLANG_VERSION) $(PY) tests/fuzz/run_fuzz.py --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The house rules: lint findings, type errors (mypy strict, ui/ included) and
# broken import contracts (pyproject.toml [tool.importlinter]) each fail it.
$(STAMP_DEV): $(STAMP_PIP)
	$(PY) -m pip install -q -e '.[test,dev]'
	@touch $@

lint: setup $(STAMP_DEV)
	$(VENV)/bin/ruff check virgl_viewer tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

.PHONY: icons man dist test-deb

# The icon's PNG sizes, rendered from resources/icons/*.svg (commit the result).
icons: setup
	QT_QPA_PLATFORM=offscreen $(PY) packaging/render_icons.py

# Man pages generated from the argparse parsers, into build/man.
man: setup
	$(PY) -m virgl_viewer.manpage -o build/man

# The sdist and the wheel (with the compiled binding), into dist/.
dist: setup
	$(PY) -m build --outdir dist .

# The .deb built, linted, installed, used and removed in a Debian 13 root
# (debootstrap; needs root and the network). See packaging/debian/README.md.
DEB_ROOT ?= build/roots/trixie
test-deb: setup
	VV_TEST_DEB=1 VV_DEB_ROOT=$(abspath $(DEB_ROOT)) $(PY) -m pytest -ra tests/packaging/test_deb.py $(PYTEST_ARGS)

clean:
	rm -rf build dist fuzz-out $(VENV) *.egg-info virgl_viewer/_native*.so
