#!/usr/bin/env bash
# Install the Debian packages edgec's tests use, where they are missing:
# gcc/g++ and binutils (compile and inspect the generated C), chromium (renders
# report.html headless in the report test), and for the Cortex-M4 checks of the
# generated C: gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm.
# Needs root (or sudo) and apt-get; elsewhere it says what is missing and the
# tests that need those tools skip with that reason.
set -euo pipefail
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
command -v readelf >/dev/null || need+=(binutils)
command -v chromium >/dev/null || need+=(chromium)
command -v arm-none-eabi-gcc >/dev/null || need+=(gcc-arm-none-eabi)
[ -d /usr/lib/arm-none-eabi/newlib ] || need+=(libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "system-deps: missing ${need[*]} and no apt-get here; install them by hand (tests needing them will skip)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo -n"; else
    echo "system-deps: missing ${need[*]}; run as root to install them (tests needing them will skip)" >&2
    exit 0
  fi
fi
echo "system-deps: installing ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
