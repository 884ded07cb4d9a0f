#!/usr/bin/env bash
# Install the Debian/Ubuntu packages the platform and its tests need, if any are missing:
# swig and libpcsclite-dev to build pyscard, pcscd and vsmartcard-vpcd for the virtual card reader,
# postgresql for the PostgreSQL half of the test suite, openssl for the certificate cross-checks.
set -euo pipefail

packages=(swig libpcsclite-dev pcscd vsmartcard-vpcd postgresql openssl)
[ "${1:-}" = "--runtime" ] && packages=(swig libpcsclite-dev pcscd vsmartcard-vpcd)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
echo "installing ${missing[*]} ..." >&2
as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
