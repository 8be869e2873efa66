#!/usr/bin/env bash
# Builds app.py into a Postern plugin component: $1/plugin.wasm (default ./build).
#   WORLD=policy-plugin (default) | lookup-plugin | filter-plugin — the role the plugin exports
#   POSTERN_WIT=<dir>   Postern's wit/ directory (default: ./wit, else the repository's wit/)
# Needs componentize-py 0.25.1: pip3 install componentize-py==0.25.1
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(mkdir -p "${1:-$here/build}" && cd "${1:-$here/build}" && pwd)"
world="${WORLD:-policy-plugin}"
if [ -n "${POSTERN_WIT:-}" ]; then
    wit="$POSTERN_WIT"
elif [ -d "$here/wit" ]; then
    wit="$here/wit"
else
    wit="$here/../../../wit"
fi
if [ ! -f "$wit/worlds.wit" ]; then
    echo "build.sh: no Postern WIT in $wit; copy Postern's wit/ next to build.sh or set POSTERN_WIT" >&2
    exit 2
fi
if ! command -v componentize-py >/dev/null 2>&1; then
    echo "build.sh: componentize-py not found; install it with: pip3 install componentize-py==0.25.1" >&2
    exit 127
fi

cd "$here"
# Bindings for editors and type checkers: point them at build/bindings.
rm -rf "$out/bindings"
componentize-py -d "$wit" -w "$world" bindings "$out/bindings" >/dev/null
componentize-py -d "$wit" -w "$world" componentize app -o "$out/plugin.wasm" >/dev/null
echo "$out/plugin.wasm"
