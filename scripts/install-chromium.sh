#!/usr/bin/env bash
# Chromium from the system's packages, which the report page's browser test drives (through the
# playwright package, which uses this browser instead of downloading its own).
# Best effort: installs with apt-get when it is missing and we may; otherwise says what to do.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "installing Chromium (for the browser test of \`tagtune dataset report\`)"
  { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium >/dev/null; } \
    || echo "warning: could not install Chromium; the report page's browser test will be skipped"
else
  echo "note: Chromium is missing; the report page's browser test needs it" \
       "(apt install chromium / brew install --cask chromium), else it is skipped"
fi
exit 0
