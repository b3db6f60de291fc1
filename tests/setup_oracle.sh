#!/usr/bin/env bash
# Installs the reference implementation used as a test oracle (Meta's sam2 1.1.0 from PyPI, CPU only,
# without its torchvision dependency: tests/oracle_shims provides the few functions it imports).
set -euo pipefail
if python -c "import sam2, hydra, iopath, cv2" 2>/dev/null; then
  exit 0
fi
python -m pip install -q hydra-core iopath opencv-python-headless
SAM2_BUILD_CUDA=0 python -m pip install -q --no-deps --no-build-isolation sam2==1.1.0
