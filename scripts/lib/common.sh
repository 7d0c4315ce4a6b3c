# shellcheck shell=bash
# Shared helpers for scripts/create-aws-secrets.sh and scripts/deploy-to-aws.sh.
#
# Sourced, never executed. Everything here writes its messages to stderr so that stdout stays
# free for data. No function in this file ever receives a secret value as an argument: secret
# values live only in the environment of the calling script and in mode-600 temporary files.

# Messages ------------------------------------------------------------------------------------

jarvis_script_name="${jarvis_script_name:-$(basename "${0:-jarvis}")}"

# File descriptor 3 is the script's original stderr: the plan printed by --dry-run and the log of
# AWS calls go there even when a caller captures a call's stderr to inspect its error.
exec 3>&2

info() { printf '%s: %s\n' "$jarvis_script_name" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$jarvis_script_name" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$jarvis_script_name" "$*" >&2
  exit 1
}

# Turns xtrace off for the rest of the script: the scripts handle secret values in variables,
# and `bash -x` would print them. Our own logging of every AWS call replaces the trace.
no_xtrace() {
  case "$-" in
    *x*)
      set +x
      info "xtrace (set -x) is disabled in this script so that no secret can be printed; every AWS call is logged instead"
      ;;
  esac
}

# Prerequisites -------------------------------------------------------------------------------

require_cmd() {
  local cmd="$1" hint="$2"
  command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' was not found on PATH. $hint"
}

require_aws_cli() {
  require_cmd aws "Install the AWS CLI (https://docs.aws.amazon.com/cli/) or 'pip install awscli'."
}

require_jq() {
  require_cmd jq "Install jq (apt-get install jq, brew install jq)."
}

# Resolves the region from AWS_REGION, AWS_DEFAULT_REGION or the CLI profile, exports both
# variables so that every aws call agrees, and fails with a clear message when none is set.
resolve_region() {
  local region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
  if [ -z "$region" ] && command -v aws >/dev/null 2>&1; then
    region="$(aws configure get region 2>/dev/null || true)"
  fi
  [ -n "$region" ] || die "no AWS region: set AWS_REGION (for example AWS_REGION=us-east-1) or configure one with 'aws configure set region <region>'"
  AWS_REGION="$region"
  AWS_DEFAULT_REGION="$region"
  export AWS_REGION AWS_DEFAULT_REGION
}

# Checks that the CLI finds usable credentials and prints the account id on stdout.
resolve_account_id() {
  local out err
  err="$(mktemp)"
  if ! out="$(aws sts get-caller-identity --query Account --output text 2>"$err")"; then
    local reason
    reason="$(tr '\n' ' ' <"$err")"
    rm -f "$err"
    die "no usable AWS credentials (aws sts get-caller-identity failed: ${reason:-no output}). Configure credentials with 'aws configure', AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."
  fi
  rm -f "$err"
  if [ -z "$out" ] || [ "$out" = "None" ]; then
    die "aws sts get-caller-identity returned no account id"
  fi
  printf '%s\n' "$out"
}

# Environment names become parts of resource names (jarvis/ENV/..., cluster jarvis-ENV).
validate_env_name() {
  local env_name="$1"
  [ -n "$env_name" ] || die "missing ENV argument (for example: production)"
  [[ "$env_name" =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] \
    || die "ENV '$env_name' is not valid: use 1-31 characters of a-z, 0-9 and '-', starting with a letter or digit"
}

# Temporary files -----------------------------------------------------------------------------

# A private directory (mode 700) for temporary files, removed on exit by the trap below.
# Every file created in it is mode 600 thanks to the umask.
JARVIS_TMP_DIR=""
make_private_tmp() {
  umask 077
  JARVIS_TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/jarvis-deploy.XXXXXXXX")"
  chmod 700 "$JARVIS_TMP_DIR"
  trap cleanup_private_tmp EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

cleanup_private_tmp() {
  if [ -n "$JARVIS_TMP_DIR" ] && [ -d "$JARVIS_TMP_DIR" ]; then
    rm -rf -- "$JARVIS_TMP_DIR"
  fi
}

# AWS calls -----------------------------------------------------------------------------------

# DRY_RUN=1 makes aws_do print the call and return without running it.
DRY_RUN="${DRY_RUN:-0}"

# Prints a command line, shell-quoted, on stderr. Arguments never hold secrets (secret values are
# passed as file:// references), so the call can be shown as it is.
show_call() {
  local prefix="$1"
  shift
  local quoted
  printf -v quoted '%q ' "$@"
  printf '%s %s\n' "$prefix" "${quoted% }" >&3
}

# "created" in a real run, "would be created" under --dry-run.
outcome() {
  if [ "$DRY_RUN" = 1 ]; then
    printf 'would be %s' "$1"
  else
    printf '%s' "$1"
  fi
}

# aws_do ARGS...: a call that changes something. Logged; skipped under --dry-run.
aws_do() {
  if [ "$DRY_RUN" = 1 ]; then
    show_call "[dry-run] would run:" aws "$@"
    return 0
  fi
  show_call "+" aws "$@"
  aws "$@"
}

# aws_read ARGS...: a call that only reads. Not logged (it would drown the log); under
# --dry-run it is printed and fails (status 3) so callers take their "not known" branch.
aws_read() {
  if [ "$DRY_RUN" = 1 ]; then
    show_call "[dry-run] would run:" aws "$@"
    return 3
  fi
  aws "$@"
}

# Prints a file given to an AWS call as file:// under --dry-run, so the plan is complete.
show_file_for_dry_run() {
  local label="$1" file="$2"
  [ "$DRY_RUN" = 1 ] || return 0
  printf '[dry-run] %s (%s):\n' "$label" "$file" >&3
  sed 's/^/    /' "$file" >&3
  printf '\n' >&3
}
