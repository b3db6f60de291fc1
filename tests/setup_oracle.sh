#!/usr/bin/env bash
# Test prerequisites:
# - the reference implementation used as a test oracle (Meta's sam2 1.1.0 from PyPI, CPU only, without
#   its torchvision dependency: tests/oracle_shims provides the few functions it imports);
# - the EdgeTAM / EfficientTAM oracles (tests/setup_edge_oracles.sh);
# - samexporter 0.5.0 (without its dependencies: only its ONNX runtime classes are used) to check that
#   exported files load in it unchanged;
# - Debian's chromium for the studio's browser tests (Playwright's own browser download is not used).
set -euo pipefail
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "setup: chromium could not be installed; the studio browser tests will be skipped" >&2
  else
    echo "setup: run 'sudo apt-get install chromium' for the studio browser tests (skipped without it)" >&2
  fi
fi
if ! python -c "import samexporter.sam2_onnx" 2>/dev/null; then
  python -m pip install -q onnxruntime opencv-python-headless \
    && python -m pip install -q --no-deps samexporter==0.5.0 \
    || echo "setup: samexporter could not be installed; its compatibility test will be skipped" >&2
fi
if ! python -c "import sam2, hydra, iopath, cv2" 2>/dev/null; then
  python -m pip install -q hydra-core iopath opencv-python-headless
  SAM2_BUILD_CUDA=0 python -m pip install -q --no-deps --no-build-isolation sam2==1.1.0
fi
# the EdgeTAM and EfficientTAM oracles, in a virtualenv of their own
bash "$(dirname "$0")/setup_edge_oracles.sh"
