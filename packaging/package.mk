# packaging/package.mk — `make package`: Debian packages for arm64, armhf and
# amd64 in dist/, built with nfpm run from the Go module proxy (no binary
# downloads). The top-level Makefile includes this file.

GO       ?= go
NFPM     ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
PKG_ARCHES ?= arm64 armhf amd64
# The Debian version sorts in build order (packaging/version.sh): 1.2.0 on
# a release tag, 1.2.0+gitYYYYMMDD.HHMMSS.<hash> after one, and
# 0.0.0~gitYYYYMMDD.HHMMSS.<hash> before the first, from the commit date.
# The packaged binary reports the same version (`lintel version`).
ifndef PKG_VERSION
PKG_VERSION := $(shell packaging/version.sh)
endif
PKG_LDFLAGS ?= -s -w -X main.version=$(PKG_VERSION)

.PHONY: package
package: ## build dist/lintel_<version>_{arm64,armhf,amd64}.deb (static binary, unit, udev rules, config, docs)
	@mkdir -p dist
	@set -e; for a in $(PKG_ARCHES); do \
	  case $$a in \
	    arm64) goarch=arm64; goarm= ;; \
	    armhf) goarch=arm; goarm=7 ;; \
	    amd64) goarch=amd64; goarm= ;; \
	    *) echo "package: unknown arch $$a (want arm64, armhf or amd64)" >&2; exit 2 ;; \
	  esac; \
	  echo "== $$a: build"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$goarch GOARM=$$goarm \
	    $(GO) build -trimpath -ldflags "$(PKG_LDFLAGS)" -o dist/pkg/$$a/lintel ./cmd/lintel; \
	  echo "== $$a: package $(PKG_VERSION)"; \
	  LINTEL_ARCH=$$a LINTEL_VERSION='$(PKG_VERSION)' \
	    $(NFPM) package --config packaging/nfpm.yaml --packager deb --target dist/; \
	done
	@ls -l dist/*.deb
