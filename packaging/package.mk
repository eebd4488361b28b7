# packaging/package.mk — `make package`: Debian packages for arm64, armhf and
# amd64 in dist/, built with nfpm run from the Go module proxy (no binary
# downloads). The top-level Makefile includes this file.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  ?= -s -w -X main.version=$(VERSION)
NFPM     ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
PKG_ARCHES ?= arm64 armhf amd64
# A Debian version must start with a digit: v1.2.0 -> 1.2.0,
# v1.2.0-3-gabc1234 -> 1.2.0+3.gabc1234, an untagged abc1234 -> 0.0.0~abc1234.
ifndef PKG_VERSION
PKG_VERSION := $(shell printf '%s\n' '$(VERSION)' | sed -e 's/^v\([0-9]\)/\1/' -e 's/^\([^0-9]\)/0.0.0~\1/' -e 's/-/+/' -e 's/-/./g')
endif

.PHONY: package
package: ## build dist/lintel_<version>_{arm64,armhf,amd64}.deb (static binary, unit, udev rules, config)
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
	    $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/pkg/$$a/lintel ./cmd/lintel; \
	  echo "== $$a: package $(PKG_VERSION)"; \
	  LINTEL_ARCH=$$a LINTEL_VERSION='$(PKG_VERSION)' \
	    $(NFPM) package --config packaging/nfpm.yaml --packager deb --target dist/; \
	done
	@ls -l dist/*.deb
