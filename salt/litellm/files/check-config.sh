#!/bin/sh
# Managed by Salt (litellm formula): check a LiteLLM config file with the
# installed LiteLLM, offline, before it replaces the live one (file.managed
# check_cmd). Prints only the verdict; the full output goes nowhere.
#   litellm-check-config [--live LIVE_CONFIG] NEW_CONFIG
# With --live and no live config yet (a first deploy), nothing serves that a
# bad config could replace: the check is left to the service, whose launcher
# has LiteLLM check its config before the first worker starts and refuses to
# start on a rejected one. LiteLLM is then imported once, not twice.
set -u
if [ "${1:-}" = "--live" ]; then
  live=$2
  shift 2
  [ -e "$live" ] || exit 0
fi
venv_bin=$(dirname "$0")
out=$(LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR "$venv_bin/litellm" --validate_config --config "$1" 2>&1)
rc=$?
[ "$rc" -eq 0 ] && exit 0
verdict=$(printf '%s\n' "$out" | grep -E 'validation failed|Error' | tail -n 5)
[ -n "$verdict" ] || verdict=$(printf '%s\n' "$out" | tail -n 5)
printf 'LiteLLM rejected the new config (exit %s); the live one stays:\n%s\n' "$rc" "$verdict" >&2
exit "$rc"
