#!/usr/bin/env bash
# Idempotent setup: Debian toolchain for the Cortex-M55 firmware, a venv with
# torch (CPU build, installed first so pip never pulls a CUDA build) and the
# project in editable mode. Every make target that needs tools runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
STAMP="$VENV/.dmxgen-setup-stamp"
# libstdc++-arm-none-eabi-newlib: C++ headers for tools/bench_tflm.py (TFLite Micro);
# chromium: the report's screenshot test (tests/test_report.py)
APT_PKGS="gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm libstdc++-arm-none-eabi-newlib chromium"

need_apt=""
command -v arm-none-eabi-gcc >/dev/null 2>&1 || need_apt=1
command -v qemu-system-arm >/dev/null 2>&1 || need_apt=1
[ -f /usr/lib/arm-none-eabi/newlib/libc.a ] || [ -d /usr/lib/arm-none-eabi/newlib ] || need_apt=1
ls /usr/include/newlib/c++/*/new >/dev/null 2>&1 || need_apt=1
command -v chromium >/dev/null 2>&1 || need_apt=1
if [ -n "$need_apt" ]; then
  if [ "${DMX_SKIP_APT:-}" = 1 ]; then
    echo "setup: skipping Debian packages ($APT_PKGS) because DMX_SKIP_APT=1" >&2
  else
    echo "setup: installing Debian packages: $APT_PKGS"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PKGS >/dev/null
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  python3 -m venv "$VENV"
fi

# Re-install only when the dependency list changed.
want=$(cat pyproject.toml tools/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "setup: installing Python packages into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  echo "$want" > "$STAMP"
fi
