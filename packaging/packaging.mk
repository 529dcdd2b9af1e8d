# packaging.mk — deb and rpm packages of logagent, built with nfpm.
#
# Included from the top-level Makefile (`include packaging/packaging.mk`) and
# also usable alone: `make -f packaging/packaging.mk deb`. Run from the
# repository root.
#
#   make deb            dist/logagent_<version>_<arch>.deb        arch: amd64 arm64
#   make rpm            dist/logagent-<version>.<rpmarch>.rpm     rpmarch: x86_64 aarch64
#   make packages       both
#   make deb-amd64 ...  one package (deb-<arch>, rpm-<arch>)
#   make nfpm           build the pinned nfpm into bin/nfpm (once)
#   make test-packages  build, inspect, install, upgrade, remove and purge
#                       the packages on this machine (root; Debian)
#
# Variables (each can be set on the command line):
#   VERSION   package version; default from `git describe --tags --always
#             --dirty` through packaging/version.sh (v1.2.3 -> 1.2.3, no tag
#             -> 0.0.0~git<sha>, no git -> 0.0.0~dev)
#   COMMIT    commit stamped into the binary; default `git rev-parse --short HEAD`
#   GO        the go command (default go)
#   PKG_ARCHES     architectures built by deb/rpm/packages (default amd64 arm64)
#   PKG_DIST       where packages go (default dist)
#   PKG_SRC, PKG_MAIN  module directory and main package to build
#                  (default . and ./cmd/logagent); the binary is built with
#                  `$(GO) build -C $(PKG_SRC) ... $(PKG_MAIN)`.

# Including this file must not change the includer's default goal.
pkg_saved_default_goal := $(.DEFAULT_GOAL)

GO ?= go

ifeq ($(origin VERSION),undefined)
VERSION := $(shell sh packaging/version.sh 2>/dev/null || echo 0.0.0~dev)
endif
ifeq ($(origin COMMIT),undefined)
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
endif

PKG_ARCHES ?= amd64 arm64
PKG_DIST ?= dist
PKG_SRC ?= .
PKG_MAIN ?= ./cmd/logagent
PKG_BUILD = $(PKG_DIST)/build
PKG_NFPM = bin/nfpm
# Stamped into package main (cmd/logagent: var version, commit).
PKG_LDFLAGS = -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

pkg_rpmarch = $(if $(filter amd64,$(1)),x86_64,$(if $(filter arm64,$(1)),aarch64,$(1)))
PKG_DEBS = $(foreach a,$(PKG_ARCHES),deb-$(a))
PKG_RPMS = $(foreach a,$(PKG_ARCHES),rpm-$(a))

.PHONY: deb rpm packages nfpm test-packages pkg-docs $(PKG_DEBS) $(PKG_RPMS) \
	$(foreach a,$(PKG_ARCHES),pkg-bin-$(a))

deb: $(PKG_DEBS)
rpm: $(PKG_RPMS)
packages: deb rpm

# nfpm is built once from the pinned tools module (tools/go.mod): its
# dependencies stay out of the agent's go.mod and come from the module proxy.
nfpm: $(PKG_NFPM)
$(PKG_NFPM): tools/go.mod tools/go.sum
	@mkdir -p $(dir $@)
	cd tools && $(GO) build -o ../$(PKG_NFPM) github.com/goreleaser/nfpm/v2/cmd/nfpm

# The binary is always rebuilt (the Go build cache makes that cheap): its
# version and commit are stamped in.
$(foreach a,$(PKG_ARCHES),pkg-bin-$(a)): pkg-bin-%:
	@mkdir -p $(PKG_BUILD)/linux_$*
	GOOS=linux GOARCH=$* CGO_ENABLED=0 $(GO) build -C $(PKG_SRC) -trimpath \
		-ldflags "$(PKG_LDFLAGS)" -o $(abspath $(PKG_BUILD)/linux_$*/logagent) $(PKG_MAIN)

# Documents for /usr/share/doc/logagent: the top-level README (or the
# packaging notes if there is none yet), the packaging notes, the license,
# and config.example.yaml when it exists.
pkg-docs:
	@rm -rf $(PKG_BUILD)/doc && mkdir -p $(PKG_BUILD)/doc
	cp $(firstword $(wildcard README.md) packaging/README.md) $(PKG_BUILD)/doc/README.md
	cp packaging/README.md $(PKG_BUILD)/doc/README.package.md
	cp packaging/copyright $(PKG_BUILD)/doc/copyright
	$(if $(wildcard config.example.yaml),cp config.example.yaml $(PKG_BUILD)/doc/config.example.yaml)

pkg_nfpm_env = PKG_VERSION='$(VERSION)' PKG_ARCH=$(1) \
	PKG_BINARY=$(abspath $(PKG_BUILD)/linux_$(1)/logagent) PKG_DOCDIR=$(abspath $(PKG_BUILD)/doc)

$(PKG_DEBS): deb-%: pkg-bin-% pkg-docs $(PKG_NFPM)
	@mkdir -p $(PKG_DIST)
	$(call pkg_nfpm_env,$*) $(PKG_NFPM) package --config packaging/nfpm.yaml \
		--packager deb --target '$(PKG_DIST)/logagent_$(VERSION)_$*.deb'

$(PKG_RPMS): rpm-%: pkg-bin-% pkg-docs $(PKG_NFPM)
	@mkdir -p $(PKG_DIST)
	$(call pkg_nfpm_env,$*) $(PKG_NFPM) package --config packaging/nfpm.yaml \
		--packager rpm --target '$(PKG_DIST)/logagent-$(VERSION).$(call pkg_rpmarch,$*).rpm'

# CI check: needs root on a Debian machine (installs the .deb for real).
test-packages:
	VERSION='$(VERSION)' COMMIT='$(COMMIT)' GO='$(GO)' MAKE='$(MAKE)' \
		bash packaging/test-packages.sh

.DEFAULT_GOAL := $(pkg_saved_default_goal)
