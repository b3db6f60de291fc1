#!/usr/bin/env bash
# The EdgeTAM and EfficientTAM test oracles: the authors' code from PyPI, in a virtualenv of its own
# (both install a package named ``sam2``, as Meta's sam2 oracle does), one package directory per family.
#   ROOT=${MASKLET_EDGE_ORACLES:-${XDG_CACHE_HOME:-$HOME/.cache}/masklet/edge-oracles}
#   $ROOT/edgetam        venv: torch (CPU), timm, hydra-core, iopath, omegaconf, numpy, pillow, tqdm
#   $ROOT/pkgs-edgetam   edgetam-dimos 1.0.1      (PYTHONPATH for the EdgeTAM oracle)
#   $ROOT/pkgs-eta       efficient-track-anything (PYTHONPATH for the EfficientTAM oracle)
# Everything official is installed with --no-deps; timm's torchvision imports are answered by
# tests/oracle_shims. Two local changes to the oracle, both value-preserving:
#   - EdgeTAM's trunk asks timm for pretrained weights (a download): tests/edge_oracle_runner.py builds it
#     with pretrained=False;
#   - EdgeTAM's perceiver calls .view on an expanded tensor, which fails as soon as two objects are
#     tracked in one batch: it is replaced by .reshape here (same values).
set -euo pipefail
ROOT=${MASKLET_EDGE_ORACLES:-${XDG_CACHE_HOME:-$HOME/.cache}/masklet/edge-oracles}
TORCH=${MASKLET_ORACLE_TORCH:-torch==2.13.0}
mkdir -p "$ROOT"
if [ ! -x "$ROOT/edgetam/bin/python" ]; then
  python -m venv "$ROOT/edgetam"
fi
PY="$ROOT/edgetam/bin/python"
if ! "$PY" -c "import torch, timm, hydra, iopath, omegaconf, PIL, tqdm, pytest" 2>/dev/null; then
  # pytest: efficient-track-anything imports it (a fixture in its utils)
  "$PY" -m pip install -q "$TORCH" hydra-core iopath tqdm pillow numpy omegaconf pytest
  "$PY" -m pip install -q --no-deps timm
fi
if [ ! -d "$ROOT/pkgs-edgetam/sam2" ]; then
  SAM2_BUILD_CUDA=0 "$PY" -m pip install -q --no-deps --target "$ROOT/pkgs-edgetam" edgetam-dimos==1.0.1
fi
if [ ! -d "$ROOT/pkgs-eta/sam2" ]; then
  SAM2_BUILD_CUDA=0 "$PY" -m pip install -q --no-deps --target "$ROOT/pkgs-eta" efficient-track-anything==1.0
fi
sed -i 's/\.expand(B, -1, -1)\.view(-1, 1, C)/.expand(B, -1, -1).reshape(-1, 1, C)/' \
  "$ROOT/pkgs-edgetam/sam2/modeling/perceiver.py"
echo "edge oracles ready in $ROOT"
