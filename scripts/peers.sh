#!/usr/bin/env bash
# Installs the tools cosy's own tools are compared with: ripgrep and bfs from the distribution's
# packages, diskus and xcp with `cargo install` into a cache directory ($COSY_PEERS, default
# ~/.cache/cosy-peers). Prints the directory to put on PATH. Whatever cannot be installed is
# named on stderr; the tests and the bench then skip that peer and say so.
set -uo pipefail
peers="${COSY_PEERS:-$HOME/.cache/cosy-peers}"
missing=()
command -v rg >/dev/null 2>&1 || missing+=(ripgrep)
command -v bfs >/dev/null 2>&1 || missing+=(bfs)
if [ ${#missing[@]} -gt 0 ]; then
    (apt-get update -qq && apt-get install -y -qq "${missing[@]}") >/dev/null 2>&1 ||
        echo "could not install ${missing[*]}" >&2
fi
for tool in diskus xcp; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "$peers/bin/$tool" ]; then
        cargo install --quiet --locked --root "$peers" "$tool" >/dev/null 2>&1 ||
            echo "could not install $tool" >&2
    fi
done
echo "$peers/bin"
