# Shared by scripts/quickstart.sh and scripts/test.sh (sourced, not run): make or reuse the
# project's virtual environment and install media_search into it.
#
#   PYTHON           the interpreter that makes the venv (default python3)
#   VENV             where (default .venv in the checkout)
#   TORCH_INDEX_URL  the index torch is installed from when the venv has none (default: PyPI's
#                    build with an NVIDIA GPU, PyTorch's CPU wheels without one)
#
# A stock Debian/Ubuntu python3 refuses `pip install` outside a venv (PEP 668), so
# everything goes into the venv; nothing is installed for the system or the user.

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# The oldest torch/torchvision the tests have run with (pyproject.toml says the same).
TORCH_REQ=${TORCH_REQ:-"torch>=2.14"}
TORCHVISION_REQ=${TORCHVISION_REQ:-"torchvision>=0.29"}
CPU_INDEX=https://download.pytorch.org/whl/cpu

say() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# venv_make: create $VENV with $PYTHON -m venv, or reuse it.
venv_make() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    return 0
  fi
  command -v "$PYTHON" >/dev/null 2>&1 \
    || die "$PYTHON not found: install Python 3.11 or newer (Debian/Ubuntu: sudo apt install python3 python3-venv)."
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$("$PYTHON" -V 2>&1) is too old: media_search needs Python 3.11 or newer (set PYTHON=python3.12 or similar)."
  say "creating the virtual environment $VENV with $("$PYTHON" -V 2>&1)"
  local log
  log=$(mktemp)
  if ! "$PYTHON" -m venv "$VENV" >"$log" 2>&1 || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$VENV" "$log"
    die "$PYTHON cannot make a virtual environment (its venv/ensurepip part is missing): install it with 'sudo apt install python3-venv' (Debian/Ubuntu) and run this again."
  fi
  rm -f "$log"
}

# has_nvidia_gpu: true when an NVIDIA driver sees a GPU.
has_nvidia_gpu() {
  [ -e /proc/driver/nvidia/version ] || { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }
}

# reachable URL: true when URL answers within a few seconds (through the user's proxy settings).
reachable() {
  "$VENV/bin/python" - "$1" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="HEAD"), timeout=10).close()
PY
}

# venv_torch: install torch and torchvision into the venv only when it has none (or too old
# ones); a torch the user put there is kept.
venv_torch() {
  local py="$VENV/bin/python" have index
  if have=$("$py" - "$TORCH_REQ" "$TORCHVISION_REQ" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
def ok(req, dist):
    want = tuple(int(x) for x in req.split(">=")[1].split("."))
    have = tuple(int(x) for x in version(dist).split("+")[0].split(".")[:len(want)])
    return have >= want
import torch, torchvision  # noqa: F401  (importable, not just listed)
sys.exit(0 if ok(sys.argv[1], "torch") and ok(sys.argv[2], "torchvision") else 1)
PY
  ); then
    say "keeping the torch $("$py" -c 'import torch; print(torch.__version__)') already in $VENV"
    return 0
  fi
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    index=$TORCH_INDEX_URL
  elif has_nvidia_gpu; then
    index=""   # PyPI's torch is the CUDA build
  elif reachable "$CPU_INDEX/torch/"; then
    index=$CPU_INDEX
  else
    say "cannot reach $CPU_INDEX: installing torch from your default index instead (on Linux that is the larger CUDA build; set TORCH_INDEX_URL to choose)"
    index=""
  fi
  venv_room_for_torch "$index"
  say "installing torch and torchvision${index:+ from $index} (once; a few minutes)"
  "$py" -m pip install -q ${index:+--index-url "$index"} "$TORCH_REQ" "$TORCHVISION_REQ"
}

# venv_room_for_torch INDEX: stop before pip when the disk that holds $VENV cannot take torch.
# Measured on Linux x86_64 with Python 3.11: torch 2.14.1 + torchvision 0.29.1 take 5,557 MB in
# a venv as PyPI's CUDA build, under 1 GB as PyTorch's CPU build; pip fails with "No space left
# on device" only after minutes of work.
venv_room_for_torch() {
  local need_mb=6000 free_kb
  case "$1" in */cpu | */cpu/) need_mb=1500 ;; esac
  free_kb=$(df -Pk "$VENV" 2>/dev/null | awk 'NR == 2 { print $4 }')
  [ -n "$free_kb" ] || return 0  # df could not tell: let pip try
  if [ "$free_kb" -lt $((need_mb * 1024)) ]; then
    die "torch and torchvision need about $((need_mb / 1000)).$((need_mb % 1000 / 100)) GB in $VENV, and its disk has $((free_kb / 1024)) MB free: free some space, or set VENV to a folder on a larger disk, and run this again."
  fi
}

# venv_install [EXTRAS]: pip install -e ".[EXTRAS]" unless the venv already has this checkout
# installed with the same pyproject.toml (and those extras; any extras include the base).
venv_install() {
  local extras=${1:-} spec=. want f
  local stamps=("$VENV/.media_search-installed-${extras:-base}")
  if [ -n "$extras" ]; then spec=".[$extras]"; else stamps+=("$VENV"/.media_search-installed-*); fi
  want="$PWD $(cksum <pyproject.toml)"
  for f in "${stamps[@]}"; do
    if [ -f "$f" ] && [ "$(cat "$f")" = "$want" ]; then
      return 0
    fi
  done
  say "installing media_search${extras:+ with its $extras extras} into $VENV"
  "$VENV/bin/python" -m pip install -q -e "$spec"
  printf '%s\n' "$want" >"$VENV/.media_search-installed-${extras:-base}"
}
