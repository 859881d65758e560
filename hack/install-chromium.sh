#!/usr/bin/env bash
# Installs what the HTML report's browser test (test/html) and `make
# screenshots` need from Debian's packages: Chromium, and Liberation Sans (the
# metric-compatible stand-in for the Helvetica the graph's SVG names, so labels
# fit their boxes). Idempotent: when both are there it does nothing, so a warm
# `make test` does not run apt again. $CHROMIUM may name the browser instead.
set -euo pipefail
need=()
browser=""
if [[ -n "${CHROMIUM:-}" && -x "${CHROMIUM}" ]]; then
	browser="${CHROMIUM}"
else
	for b in chromium chromium-browser; do
		if p=$(command -v "$b"); then
			browser="$p"
			break
		fi
	done
fi
[[ -n "$browser" ]] || need+=(chromium)
if ! { command -v fc-list >/dev/null && fc-list 2>/dev/null | grep -q "Liberation Sans"; }; then
	need+=(fonts-liberation)
fi
if [[ ${#need[@]} -eq 0 ]]; then
	echo "chromium: $browser"
	exit 0
fi
if ! command -v apt-get >/dev/null; then
	echo "install-chromium: missing ${need[*]} and no apt-get to install them; install them by hand (or set CHROMIUM to a Chromium binary)" >&2
	exit 1
fi
sudo=()
if [[ "$(id -u)" != 0 ]]; then
	if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo=(sudo -n)
	else
		echo "install-chromium: missing ${need[*]}; not root and no passwordless sudo: install Debian's packages by hand" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-chromium: apt-get install ${need[*]}"
if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; then
	# A fresh machine's package lists may be missing or stale.
	"${sudo[@]}" apt-get update >/dev/null
	"${sudo[@]}" apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
fi
echo "chromium: $(command -v chromium || echo "${browser}")"
