# shellcheck shell=bash
# Sourced by the scripts that need Python: `python_env` makes sure a virtual environment
# with scripts/requirements.txt exists (created on first use, reused after) and exports
# MLOPS_PYTHON, its interpreter.

python_env() {
  local venv="${MLOPS_VENV:-$HOME/.cache/mlops-rs/venv}"
  local requirements
  requirements="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/requirements.txt"
  local stamp="$venv/.requirements.sha256"
  local want
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== preparing Python environment in $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -r "$requirements"
    echo "$want" > "$stamp"
  fi
  # LightGBM's wheel links the system's OpenMP runtime.
  if ! ldconfig -p 2>/dev/null | grep -q 'libgomp.so.1'; then
    echo "== installing libgomp1 (the OpenMP runtime LightGBM links)"
    apt-get install -y libgomp1 >/dev/null
  fi
  export MLOPS_PYTHON="$venv/bin/python"
}
