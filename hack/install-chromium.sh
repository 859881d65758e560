#!/usr/bin/env bash
# Installs Chromium from Debian's packages for the HTML report's browser test
# (test/html). Idempotent: when a chromium binary is already on PATH (or at
# $CHROMIUM) it does nothing, so a warm `make test` does not run apt again.
set -euo pipefail
if [[ -n "${CHROMIUM:-}" && -x "${CHROMIUM}" ]]; then
	echo "chromium: ${CHROMIUM}"
	exit 0
fi
for b in chromium chromium-browser; do
	if p=$(command -v "$b"); then
		echo "chromium: $p"
		exit 0
	fi
done
if ! command -v apt-get >/dev/null; then
	echo "install-chromium: no chromium on PATH and no apt-get to install it; set CHROMIUM to a Chromium binary" >&2
	exit 1
fi
sudo=""
if [[ "$(id -u)" != 0 ]]; then
	if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo="sudo -n"
	else
		echo "install-chromium: not root and no passwordless sudo: install Debian's chromium package by hand" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends chromium fonts-dejavu-core >/dev/null; then
	$sudo apt-get update >/dev/null
	$sudo apt-get install -y --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
echo "chromium: $(command -v chromium)"
