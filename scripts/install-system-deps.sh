#!/usr/bin/env bash
# Install the Debian packages the test suite needs, if missing. Needs root (or sudo); otherwise it says what
# to install and the tests that need them skip with that reason.
set -euo pipefail
need=()
command -v Orthanc >/dev/null 2>&1 || need+=(orthanc orthanc-dicomweb)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
ldconfig -p 2>/dev/null | grep -q libEGL_mesa || need+=(libegl-mesa0 libegl1)
ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1 || need+=(libgl1-mesa-dri)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
if ! $sudo true 2>/dev/null; then
  echo "install-system-deps: not root; please install: ${need[*]}" >&2
  exit 0
fi
echo "install-system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the packaged Orthanc service on install where it can; the tests run their own instance.
$sudo service orthanc stop >/dev/null 2>&1 || true
# Likewise the packaged PostgreSQL cluster: the tests run a private server on a free loopback port.
$sudo service postgresql stop >/dev/null 2>&1 || true
