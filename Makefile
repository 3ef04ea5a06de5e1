# mmfuse — the two commands of the quick start, and the pieces they are made of.
#   make demo   install missing packages, build, run experiments/quickstart.yaml
#   make test   install missing packages, build, run every test suite
#   make experiments   run the studies of docs/results.md and regenerate its tables and
#                      charts (under 30 minutes on 2 cores; FRESH=1 reruns every point)
BUILD ?= build
FRESH ?= 0
JOBS ?= 2
MESON_FLAGS ?=

# Debian packages the build and tests need (Debian 12 names).
PACKAGES := meson ninja-build pkg-config gcc libopenblas-dev libltdl-dev libyaml-dev \
            libhdf5-dev check libjansson-dev nettle-dev zlib1g-dev dataset-fashion-mnist \
            python3-h5py chromium \
            clang libclang-rt-14-dev

.PHONY: all deps build demo test experiments clean install

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

experiments: build
	FRESH=$(FRESH) JOBS=$(JOBS) experiments/studies/make-results.sh $(BUILD)

install: build
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD)
