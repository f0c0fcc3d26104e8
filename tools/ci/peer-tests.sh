#!/usr/bin/env bash
# Fetch the source distribution of the installed version of each named package (default: optuna) into the
# peer-test cache, where the tests that run a peer's own published test cases against ours find it (Optuna's
# study tests are in its sdist, not in its wheel). A cached sdist is not fetched again.
#
#   tools/ci/peer-tests.sh [PACKAGE...]     # prints the path of each sdist, one a line
#
# PYTHON (default: the checkout's .venv/bin/python) is the interpreter whose installed version counts and whose
# pip downloads; KAKEHASHI_PEER_TESTS_DIR (default: .cache/peer-tests in the checkout) is the cache.
# On failure: one "peer-tests: error: ..." line on stderr, exit 1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
CACHE="${KAKEHASHI_PEER_TESTS_DIR:-$ROOT/.cache/peer-tests}"
[ $# -gt 0 ] || set -- optuna

fail() {
    echo "peer-tests: error: $*" >&2
    exit 1
}

mkdir -p "$CACHE"
for package in "$@"; do
    version=$("$PYTHON" -c 'import importlib.metadata, sys; print(importlib.metadata.version(sys.argv[1]))' \
        "$package" 2>/dev/null) || fail "$package is not installed for $PYTHON"
    sdist="$CACHE/$package-$version.tar.gz"
    if [ ! -s "$sdist" ]; then
        download=$(mktemp -d "$CACHE/.download.XXXXXX")
        if ! "$PYTHON" -m pip download --quiet --no-binary :all: --no-deps --timeout 15 --retries 1 \
            -d "$download" "$package==$version" >"$download/pip.log" 2>&1; then
            reason=$(grep -v '^[[:space:]]*$' "$download/pip.log" | tail -n 1 || true)
            rm -rf "$download"
            fail "could not download the $package $version sdist with pip: ${reason:-no output}"
        fi
        files=("$download"/*.tar.gz)
        [ -s "${files[0]}" ] || { rm -rf "$download"; fail "pip gave no .tar.gz for $package $version"; }
        mv "${files[0]}" "$sdist"
        rm -rf "$download"
    fi
    echo "$sdist"
done
