#!/usr/bin/env bash
# Prepare a fresh Debian machine for the demo and the tests: Debian packages for
# the local systemd test host, then the controller venv (.venv) with Salt and
# the test stack, pinned by requirements-dev.txt. Idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(debootstrap systemd-container openssh-client iproute2 nftables gnupg util-linux redis-server prometheus)
VENV=${VENV:-.venv}
STAMP="$VENV/.bootstrap-stamp"

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: root is needed to install Debian packages and run systemd-nspawn" >&2
    exit 1
  fi
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  need_root
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  # --no-install-recommends: recommends of systemd-container would edit nsswitch.conf
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

want="$(cat requirements-dev.txt requirements-dev.overrides.txt | sha256sum | cut -d' ' -f1) $(python3 --version 2>&1) bytecode"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

# BOOTSTRAP_ROOTFS=1 (make demo): the local systemd host's rootfs (debootstrap; no Salt, salt-ssh
# ships its thin) is built meanwhile, by the harness (stdlib only: the system python3 runs it), into
# its cache; demo.py then finds it there. Downloads and dpkg, beside the venv's Salt build (CPU).
rootfs_pid=
if [ "${BOOTSTRAP_ROOTFS:-0}" = 1 ]; then
  need_root
  mkdir -p .state
  python3 -m tests.harness.systemd_host build --salt-ssh-only >.state/rootfs-build.log 2>&1 &
  rootfs_pid=$!
  # a failed venv build still waits for it (no orphan; what it built stays cached)
  trap '[ -z "$rootfs_pid" ] || wait "$rootfs_pid" || true' EXIT
  echo "bootstrap: building the systemd host's rootfs meanwhile (log: .state/rootfs-build.log)"
fi

started=$SECONDS
echo "bootstrap: building $VENV"
# Installer venv for uv; the host's pip settings (find-links, constraints) must not leak in.
unset PIP_FIND_LINKS
export PIP_CONFIG_FILE=/dev/null UV_NATIVE_TLS=1
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "$(grep -E "^uv==" requirements-dev.txt)"
# the overrides again: without them uv would add back what they leave out (timelib, a C build)
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --override requirements-dev.overrides.txt -r requirements-dev.txt
# Bytecode for everything installed, an existing .venv's too (uv compiles only what it installs):
# every salt-ssh run imports Salt and its loader's modules on this machine, and with
# PYTHONDONTWRITEBYTECODE set (as here and in CI) no .pyc is ever written, so each run compiled
# them from source again (salt-ssh --version 1.1 -> 0.4 s; README, issue 17).
"$VENV/bin/python" -m compileall -q -j 0 "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null
echo "$want" >"$STAMP"
echo "bootstrap: $VENV built in $((SECONDS - started)) s"
if [ -n "$rootfs_pid" ]; then
  if wait "$rootfs_pid"; then
    echo "bootstrap: rootfs ready ($((SECONDS - started)) s since the venv build began)"
  else
    echo "bootstrap: the rootfs build failed (the demo tries again); see .state/rootfs-build.log" >&2
  fi
  rootfs_pid=
fi
