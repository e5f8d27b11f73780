#!/usr/bin/env bash
# Installs what lnfree needs to build and test, when it is missing: Debian packages (with apt-get when run as
# root; otherwise prints the command to run), and with --python the project-local virtual environment .venv with
# dev/requirements.txt (the PyTorch twin, transformers and TransformerLens for the interoperability tests).
# Safe to run again: it does nothing when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ make catch2 nlohmann-json3-dev libcli11-dev libopenblas-dev libopenmpi-dev openmpi-bin clang-14 libclang-rt-14-dev
          python3-venv)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "setup: missing Debian packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

if [ "${1:-}" = "--python" ]; then
    if [ ! -x .venv/bin/python ]; then
        echo "setup: creating .venv"
        python3 -m venv .venv
    fi
    # a stamp of the requirements file's content: reinstall only when it changed
    stamp=".venv/requirements.$(sha256sum dev/requirements.txt | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        echo "setup: installing dev/requirements.txt into .venv (torch is a large download)"
        .venv/bin/pip install -q -r dev/requirements.txt
        rm -f .venv/requirements.*
        touch "$stamp"
    fi
fi
