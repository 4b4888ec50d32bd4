#!/usr/bin/env bash
# Runs every lab study with --quick, opens the report in headless Chromium (Debian's chromium, installed by
# scripts/deps.sh), lets its scripts run, and checks the page as a reader would get it:
#  - every series has its chart, and every chart painted its canvas with data (the page writes
#    data-charts-expected and data-charts-drawn on <body> once Chart.js has drawn);
#  - the page logged nothing to the console (no error, no warning).
# usage: lab_report_in_browser.sh NORMLAB_LAB WORK_DIR
set -euo pipefail
lab=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
"$lab" run all --quick --no-progress --out "$work/out" > "$work/run.log"
command -v chromium >/dev/null || { echo "chromium is missing (scripts/deps.sh installs it)"; exit 1; }
report="$work/out/report.html"
canvases=$(grep -o '<canvas id="chart-' "$report" | wc -l)
timeout 120 chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=20000 \
  --enable-logging=stderr --v=0 --dump-dom "file://$report" > "$work/dom.html" 2> "$work/chromium.log"
expected=$(grep -o 'data-charts-expected="[0-9]*"' "$work/dom.html" | grep -o '[0-9]*' || true)
drawn=$(grep -o 'data-charts-drawn="[0-9]*"' "$work/dom.html" | grep -o '[0-9]*' || true)
if [ -z "$expected" ] || [ -z "$drawn" ]; then
  echo "the page's script did not finish (no data-charts-* on <body>); Chromium's log:"
  grep -i "console\|error" "$work/chromium.log" | head -20
  exit 1
fi
if grep -q ":CONSOLE" "$work/chromium.log"; then
  echo "the page logged to the console:"
  grep ":CONSOLE" "$work/chromium.log"
  exit 1
fi
if [ "$canvases" -lt 1 ] || [ "$expected" -ne "$canvases" ] || [ "$drawn" -ne "$canvases" ]; then
  echo "charts: $canvases canvases in the page, $expected charts made, $drawn drawn with data"
  exit 1
fi
echo "report.html: all $drawn charts drawn, no console output"
