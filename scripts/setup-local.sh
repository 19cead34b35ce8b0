#!/usr/bin/env bash
# Installs what the local stack needs and a fresh machine lacks: moto's server (DynamoDB and S3
# on 127.0.0.1), cfn-lint, HubSpot's official Python SDK (a compatibility test of the
# sandbox), pyarrow (an independent reader of the Parquet exports), simple-salesforce (a compatibility
# test of the Salesforce sandbox), and Debian's chromium (the dashboard is checked in a real browser). Idempotent and
# quiet when everything is there.
set -euo pipefail
need=()
python3 -c 'import moto.server, flask, werkzeug' 2>/dev/null || need+=('moto[server]')
command -v cfn-lint >/dev/null 2>&1 || python3 -c 'import cfnlint' 2>/dev/null || need+=('cfn-lint')
python3 -c 'import hubspot' 2>/dev/null || need+=('hubspot-api-client')
python3 -c 'import pyarrow.parquet' 2>/dev/null || need+=('pyarrow')
python3 -c 'import simple_salesforce' 2>/dev/null || need+=('simple-salesforce')
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing ${need[*]} with pip…" >&2
  python3 -m pip install --quiet --disable-pip-version-check "${need[@]}"
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "Installing Debian's chromium (the dashboard's browser test)…" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
