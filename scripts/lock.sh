#!/usr/bin/env bash
# Regenerate the hashed lock of a LiteLLM version:
#   make lock VERSION=1.108.7   (writes salt/litellm/files/locks/litellm-VERSION.txt
#                                and its compile list, litellm-VERSION.compile.txt)
# Universal lock for Python >= 3.11 on every platform; pins uv too, which
# the formula bootstraps from the same lock.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:?usage: scripts/lock.sh VERSION}
UV_VERSION=$(grep -E '^uv==' requirements-dev.txt | cut -d= -f3)

out=salt/litellm/files/locks/litellm-$VERSION.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/requirements.in" <<IN
litellm[proxy]==$VERSION
# Without prisma, a request with no key gets HTTP 500 instead of 401.
prisma
# The prometheus callback (litellm:metrics); litellm[proxy] does not pull it in.
prometheus_client
uv==$UV_VERSION
IN
# An existing lock's pins are kept (uv prefers the versions in the output
# file): adding a package does not move the others.
if [ -f "$out" ]; then cp "$out" "$tmp/lock.txt"; fi
UV_NATIVE_TLS=1 .venv/bin/uv pip compile --quiet --universal --python-version 3.11 \
  --generate-hashes --no-header --output-file "$tmp/lock.txt" "$tmp/requirements.in"
{
  echo "# Lock of litellm[proxy]==$VERSION for the litellm formula (hashes required)."
  echo "# Regenerate: make lock VERSION=$VERSION"
  sed "s|$tmp/||" "$tmp/lock.txt"
} >"$out"
echo "wrote $out ($(grep -c '==' "$out") pinned packages)"
# The files its proxy compiles at start (the releases compile only these): from a real run.
.venv/bin/python scripts/compile_list.py "$VERSION"
