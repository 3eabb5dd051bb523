#!/usr/bin/env bash
# Installs the Debian packages the tests use, idempotently: nothing happens
# when they are all present. Fails loudly (non-zero) when one cannot be
# installed, so a test that needs it fails rather than skips.
#
#   python3-jwt                            PyJWT: third-party RS256/ES256/EdDSA tokens
#   python3-djangorestframework-simplejwt  Django REST framework SimpleJWT access/refresh tokens
#   nginx                                  auth_request in front of keygate's HTTP check (proxies/)
#   caddy                                  forward_auth in front of keygate's HTTP check (proxies/)
#   curl                                   the client of the proxy tests (proxies/)
set -euo pipefail
packages=(python3-jwt python3-djangorestframework-simplejwt nginx caddy curl)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "install-debian-packages: apt-get not found; install by hand: ${missing[*]}" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-debian-packages: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "install-debian-packages: installing ${missing[*]}"
# The tests run nginx and Caddy themselves on free ports: keep the packages'
# system services from starting (and taking port 80) during the install.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null && "${sudo[@]}" chmod 755 "$policy" && made_policy=1
fi
cleanup() { [ -n "$made_policy" ] && "${sudo[@]}" rm -f "$policy"; return 0; }
trap cleanup EXIT
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
