#!/usr/bin/env bash
# The deployment checks, printing the time each stage took:
#   ShellCheck    the deploy scripts
#   validate      Dockerfile structure; Kustomize and Helm renders (Helm's own engine) validated
#                 strictly against the Kubernetes schemas; Helm = Kustomize; configs checked by
#                 the real broker (tests/deploy/validate.py says what each check proves)
#   nginx         deploy/nginx/ in front of two real nodes with real stompjs clients over wss
#   local cluster deploy/local-cluster.sh: Tansu + three nodes, a message across nodes, stop
#
# Needs scripts/install-deploy-deps.sh and scripts/install-tansu.sh first (and kubectl, which
# this machine has). Anything missing is a failure, never a quiet skip.
# Environment:
#   STOMPEDE_BIN  the broker binary (default: the debug build in $CARGO_TARGET_DIR, built here)
#   STOMPEDE_DEPLOY_SKIP_LOCAL_CLUSTER=1  leaves the local-cluster stage out, and says so
set -euo pipefail
# shellcheck source=SCRIPTDIR/../../scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
cd "$REPO"

VENV="$STOMPEDE_CACHE/venv-deploy"
missing=()
[ -x "$VENV/bin/python" ] || missing+=("the deploy venv ($VENV)")
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v kubectl >/dev/null || missing+=("kubectl (for kubectl kustomize; not a Debian package)")
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -d tests/deploy/node_modules/@stomp/stompjs ] || missing+=("tests/deploy/node_modules")
SKIP_LOCAL_CLUSTER="${STOMPEDE_DEPLOY_SKIP_LOCAL_CLUSTER:-0}"
if [ "$SKIP_LOCAL_CLUSTER" != 1 ] && [ ! -x "${TANSU_BIN:-$STOMPEDE_CACHE/tansu/bin/tansu}" ]; then
  missing+=("Tansu (scripts/install-tansu.sh; or STOMPEDE_DEPLOY_SKIP_LOCAL_CLUSTER=1)")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  printf 'tests/deploy/run.sh: missing: %s\n' "${missing[@]}" >&2
  echo "run scripts/install-deploy-deps.sh first" >&2
  exit 1
fi

if [ -z "${STOMPEDE_BIN:-}" ]; then
  require_cargo
  stage "build stompede (debug)" cargo build --locked -q -p stompede --bin stompede
  export STOMPEDE_BIN="$CARGO_TARGET_DIR/debug/stompede"
fi

stage "shellcheck" shellcheck -x deploy/local-cluster.sh scripts/install-deploy-deps.sh scripts/install-lib.sh tests/deploy/*.sh
stage "validate (docker, k8s, helm)" "$VENV/bin/python" tests/deploy/validate.py --stompede "$STOMPEDE_BIN"
stage "nginx + 2 nodes + stompjs" tests/deploy/nginx-test.sh
if [ "$SKIP_LOCAL_CLUSTER" = 1 ]; then
  echo
  echo "==> [local cluster] NOT RUN: STOMPEDE_DEPLOY_SKIP_LOCAL_CLUSTER=1"
else
  stage "local cluster (tansu + 3)" tests/deploy/local-cluster-test.sh
fi

print_summary
if [ "$SKIP_LOCAL_CLUSTER" = 1 ]; then
  echo "deploy: ${#STAGE_SUMMARY[@]} passed, 0 failed, 1 skipped"
else
  echo "deploy: ${#STAGE_SUMMARY[@]} passed, 0 failed"
fi
