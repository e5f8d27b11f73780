#!/usr/bin/env bash
# Installs what lnfree needs to build and test, when it is missing: Debian packages (with apt-get when run as
# root; otherwise prints the command to run), and with --python the project-local virtual environment .venv with
# dev/requirements.txt (the PyTorch twin; transformers, TransformerLens and NNSight for the interoperability tests).
# With --cudnn-frontend it only fetches the header-only cuDNN frontend (the pinned PyPI wheel
# nvidia-cudnn-frontend, its include/) into build/cudnn_frontend/include, for `make train USE_CUDNN=1`.
# Safe to run again: it does nothing when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--cudnn-frontend" ]; then
    frontend_version=1.32.0
    target=build/cudnn_frontend/include
    [ -f "$target/cudnn_frontend.h" ] && exit 0
    echo "setup: fetching cuDNN frontend $frontend_version headers into $target"
    # unpacked beside the target and renamed into place: an interrupted run leaves no half-written include folder
    mkdir -p build/cudnn_frontend
    download=$(mktemp -d)
    partial=$(mktemp -d build/cudnn_frontend/include.partial.XXXXXX)
    trap 'rm -rf "$download" "$partial"' EXIT
    if ! python3 -m pip download -q --no-deps --dest "$download" "nvidia-cudnn-frontend==$frontend_version" >"$download/log" 2>&1; then
        echo "setup: pip could not download nvidia-cudnn-frontend==$frontend_version: $(grep -v '^ *$' "$download/log" | tail -n 1)" >&2
        exit 1
    fi
    # python's zipfile rather than unzip, which not every machine has
    if ! python3 - "$partial" "$download"/*.whl >"$download/log" 2>&1 <<'PY'
import sys, zipfile
partial, wheel = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(partial, [name for name in z.namelist() if name.startswith("include/")])
PY
    then
        echo "setup: could not unpack include/ of the nvidia-cudnn-frontend wheel: $(tail -n 1 "$download/log")" >&2
        exit 1
    fi
    rm -rf "$target"
    mv "$partial/include" "$target"
    exit 0
fi

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
