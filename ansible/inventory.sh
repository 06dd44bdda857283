#!/bin/sh
# Ansible dynamic inventory from a chassis profile.
#   FLEXVISOR_PROFILE=chassis-profiles/c5-200k.toml ansible-inventory -i ansible/inventory.sh --graph
# FLEXCTL may point at a flexctl binary; by default the one on PATH is used.
set -eu
: "${FLEXVISOR_PROFILE:?set FLEXVISOR_PROFILE to a chassis profile, e.g. chassis-profiles/c5-200k.toml}"
exec "${FLEXCTL:-flexctl}" profile inventory "$FLEXVISOR_PROFILE" "$@"
