#!/usr/bin/env bash
# Makes sure the command-line tools the tests drive are installed, from Debian's packages when missing:
# kubectl (end-to-end tests use it as a user would), qemu-img (test VHDs are made by a real tool) and
# openssl (the Azure emulator makes its TLS certificates with it) and lua5.1 (the Argo CD health checks
# are Lua 5.1, the language Argo CD embeds). Idempotent; quiet when all is there.
set -euo pipefail
LOG_TAG=test-tools
. "$(dirname "$0")/lib.sh"

missing=()
command -v kubectl >/dev/null || missing+=(kubernetes-client)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
command -v openssl >/dev/null || missing+=(openssl)
command -v lua5.1 >/dev/null || missing+=(lua5.1)
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
