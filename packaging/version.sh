#!/bin/sh
# packaging/version.sh [DIR] — the Debian version of a package built from
# the git tree at DIR (default: this repository). It sorts in build order,
# so an upgrade never looks like a downgrade to dpkg (issue 16):
#
#   HEAD tagged v1.2.0 (or v1.2.0-rc1)  1.2.0 (1.2.0~rc1, before 1.2.0)
#   later commits after tag v1.2.0      1.2.0+git20261208.014544.1ff557a5c3e9
#   no release tag yet                  0.0.0~git20261208.014544.1ff557a5c3e9
#
# The date and time are HEAD's commit date in UTC, so a later commit sorts
# higher whatever its hash; the hash says which commit it was. A tree with
# uncommitted changes gets "+dirty". Without git: 0.0.0~dev.
set -eu
dir=${1:-$(dirname "$0")/..}
cd "$dir"
if ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
	echo 0.0.0~dev
	exit 0
fi
hash=$(git rev-parse --short=12 HEAD)
stamp=$(TZ=UTC0 git log -1 --format=%cd --date=format-local:%Y%m%d.%H%M%S HEAD)
dirty=
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	dirty=+dirty
fi
# A Debian upstream version has no "-": a pre-release suffix sorts before
# the release with "~".
if tag=$(git describe --tags --exact-match --match 'v[0-9]*' HEAD 2>/dev/null); then
	echo "$(printf '%s' "${tag#v}" | tr '-' '~')${dirty}"
elif tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' HEAD 2>/dev/null); then
	echo "$(printf '%s' "${tag#v}" | tr '-' '~')+git${stamp}.${hash}${dirty}"
else
	echo "0.0.0~git${stamp}.${hash}${dirty}"
fi
