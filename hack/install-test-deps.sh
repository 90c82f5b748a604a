#!/bin/sh
# Install what the test suite needs beyond Go, on Debian or Ubuntu:
#   tshark - the datapath's pcap tests check that Wireshark decodes the
#            emulator's output (nic/emulated/datapath, TestPcapOpensInTshark).
# Idempotent: installs only what is missing and exits 0 when all is present.
# Usage: hack/install-test-deps.sh   (as root, or with sudo available)
set -eu

missing=""
command -v tshark >/dev/null 2>&1 || missing="$missing tshark"
if [ -z "$missing" ]; then
	echo "test dependencies present"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# wireshark-common asks whether non-root users may capture: answer no
# without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO apt-get install -y -qq --no-install-recommends $missing
echo "installed:$missing"
