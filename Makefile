# mmfuse — the two commands of the quick start, and the pieces they are made of.
#   make demo   install missing packages, build, run experiments/quickstart.yaml
#   make test   install missing packages, build, run every test suite
#   make test-sanitize   the suites again under ASan + UBSan in build-asan, as CI runs them
#                        (all but the suite 'long'; docs/testing.md)
#   make test-tsan       the prefetch thread's and the sweeps' suites under ThreadSanitizer
#   make experiments   run the studies of docs/results.md and regenerate its tables and
#                      charts (under 30 minutes on 2 cores; FRESH=1 reruns every point)
BUILD ?= build
FRESH ?= 0
JOBS ?= 2
MESON_FLAGS ?=
SAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan

# Debian packages the build and tests need (Debian 12 names).
PACKAGES := meson ninja-build pkg-config gcc libopenblas-dev libltdl-dev libyaml-dev \
            libhdf5-dev check libjansson-dev nettle-dev zlib1g-dev dataset-fashion-mnist \
            python3-h5py chromium \
            clang libclang-rt-14-dev \
            libopenmpi-dev openmpi-bin openssh-client

.PHONY: all deps build demo test test-sanitize test-tsan experiments clean install

all: build

# Installs only what is missing; does nothing (and needs no network) when all are present.
deps:
	@missing=$$(for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_FLAGS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	$(BUILD)/framework/cli/mmfuse run experiments/quickstart.yaml

test: build
	meson test -C $(BUILD) --print-errorlogs --num-processes 2

# -O1 (meson.build adds frame pointers): fast enough for CI, its stacks still readable
test-sanitize: deps
	[ -f $(SAN_BUILD)/build.ninja ] || \
	  meson setup $(SAN_BUILD) -Db_sanitize=address,undefined -Doptimization=1 $(MESON_FLAGS)
	ninja -C $(SAN_BUILD)
	meson test -C $(SAN_BUILD) --print-errorlogs --num-processes 2 --no-suite long

test-tsan: deps
	[ -f $(TSAN_BUILD)/build.ninja ] || \
	  meson setup $(TSAN_BUILD) -Db_sanitize=thread -Doptimization=1 $(MESON_FLAGS)
	ninja -C $(TSAN_BUILD)
	meson test -C $(TSAN_BUILD) --print-errorlogs --num-processes 2 \
	  data-readers data-hdf5 experiment train tracking sweep

experiments: build
	FRESH=$(FRESH) JOBS=$(JOBS) experiments/studies/make-results.sh $(BUILD)

install: build
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD)
