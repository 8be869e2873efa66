#!/usr/bin/env bash
# Builds app.py into a component for world `policy-plugin`: $1/policy_python.wasm (default ./build).
# Needs componentize-py 0.25.1: pip3 install componentize-py==0.25.1
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(mkdir -p "${1:-$here/build}" && cd "${1:-$here/build}" && pwd)"
wit="$here/../../wit"
world="policy-plugin"

if ! command -v componentize-py >/dev/null 2>&1; then
    echo "build.sh: componentize-py not found; install it with: pip3 install componentize-py==0.25.1" >&2
    exit 127
fi

cd "$here"
# Bindings for editors and type checkers (point them at build/bindings). componentize-py
# generates its own copy while building, so these are regenerated here only to stay in sync
# with ../../wit; they are not part of the component.
rm -rf "$out/bindings"
componentize-py -d "$wit" -w "$world" bindings "$out/bindings" >/dev/null

# Bundles CPython, the generated bindings and app.py into one component (~18 MB).
componentize-py -d "$wit" -w "$world" componentize app -o "$out/policy_python.wasm" >/dev/null
echo "$out/policy_python.wasm"
