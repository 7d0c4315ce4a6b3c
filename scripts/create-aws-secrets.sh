#!/usr/bin/env bash
# Creates or updates Jarvis's secrets in AWS Secrets Manager for one environment.
#
#   scripts/create-aws-secrets.sh ENV [--rotate-auth-token] [--dry-run]
#
# Secrets (each a JSON object whose keys are the environment variable names Jarvis reads):
#   jarvis/ENV/database  {"DATABASE_URL"}
#   jarvis/ENV/redis     {"REDIS_HOST","REDIS_PORT","REDIS_PASSWORD"}
#   jarvis/ENV/ai-keys   {"OPENAI_API_KEY","ANTHROPIC_API_KEY","GEMINI_API_KEY"}
#   jarvis/ENV/app       {"JARVIS_AUTH_TOKEN"}
#
# Values come from the environment. A value that is neither in the environment nor already stored
# is asked for when a terminal is attached; without a terminal, optional values default to ""
# (Jarvis treats an empty value as unset: no Redis, no provider key, REDIS_PORT 6379),
# JARVIS_AUTH_TOKEN is generated, and a missing DATABASE_URL is an error.
# Values already stored are kept unless the environment gives a new one, so a second run changes
# nothing; JARVIS_AUTH_TOKEN is only replaced when it is set or --rotate-auth-token is given.
# Secret values are never printed and never put on a command line: they go to the AWS CLI through
# mode-600 files (file://) in a private temporary directory that is removed on exit.
set -euo pipefail

jarvis_script_name="create-aws-secrets.sh"
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$script_dir/lib/common.sh"
no_xtrace

usage() {
  cat <<'EOF'
Usage: scripts/create-aws-secrets.sh ENV [--rotate-auth-token] [--dry-run]

Creates or updates jarvis/ENV/{database,redis,ai-keys,app} in AWS Secrets Manager.

Environment:
  DATABASE_URL                 PostgreSQL URL (required unless already stored)
  REDIS_HOST, REDIS_PORT, REDIS_PASSWORD          optional (empty: no Redis; REDIS_PORT empty: 6379)
  OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY  optional
  JARVIS_AUTH_TOKEN            bearer token; generated on the first run when unset
  AWS_REGION                   region (or AWS_DEFAULT_REGION, or the CLI profile's region)
  JARVIS_SECRETS_KMS_KEY_ID    optional KMS key for new secrets
  AWS_ENDPOINT_URL             optional endpoint (for an emulator)

An empty variable counts as unset. Stored values are kept unless a new one is given.
Options:
  --rotate-auth-token   replace the stored JARVIS_AUTH_TOKEN with a newly generated one
  --dry-run             print the AWS calls that would be made and make none
EOF
}

env_name=""
rotate_token=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --rotate-auth-token) rotate_token=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *)
      [ -z "$env_name" ] || die "unexpected argument '$1' (see --help)"
      env_name="$1"
      ;;
  esac
  shift
done

# Each secret: its name suffix, a description and its keys. A key's policy says what happens when
# neither the environment nor the stored secret has a value for it.
#   required  - prompt on a terminal, otherwise fail
#   optional  - prompt on a terminal, otherwise ""
#   default=V - prompt on a terminal (Enter keeps V), otherwise V
#   generate  - generate a random token
# A key marked secret is read without echo.
SECRET_SPECS=(
  "database|PostgreSQL connection URL for Jarvis|DATABASE_URL:required:secret"
  "redis|Redis connection for Jarvis (optional; empty values mean no Redis, an empty REDIS_PORT means 6379)|REDIS_HOST:optional:plain REDIS_PORT:optional:plain REDIS_PASSWORD:optional:secret"
  "ai-keys|Model provider API keys for Jarvis (empty means not configured)|OPENAI_API_KEY:optional:secret ANTHROPIC_API_KEY:optional:secret GEMINI_API_KEY:optional:secret"
  "app|Jarvis application secrets|JARVIS_AUTH_TOKEN:generate:secret"
)

interactive=0
if [ -t 0 ]; then
  interactive=1
fi

generate_token() {
  # 32 random bytes as 64 hex characters.
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

# Turns the terminal's echo off or back on; the EXIT trap turns it back on whatever happens.
saved_tty=""
terminal_echo() {
  if [ "$1" = off ]; then
    saved_tty="$(stty -g 2>/dev/null || true)"
    stty -echo 2>/dev/null || true
  elif [ -n "$saved_tty" ]; then
    stty "$saved_tty" 2>/dev/null || true
    saved_tty=""
  fi
}
restore_terminal_and_clean_up() {
  terminal_echo on
  cleanup_private_tmp
}

# Reads one value from the terminal into the variable named by $1 (exported).
prompt_value() {
  local key="$1" visibility="$2" hint="$3" value=""
  if [ "$visibility" = secret ]; then
    # Echo goes off before the prompt is shown, so not even a fast typist or a paste that
    # arrives before `read` starts can have the value echoed.
    terminal_echo off
    printf '%s%s: ' "$key" "$hint" >&2
    IFS= read -rs value || true
    terminal_echo on
    printf '\n' >&2
  else
    printf '%s%s: ' "$key" "$hint" >&2
    IFS= read -r value || true
  fi
  printf -v "$key" '%s' "$value"
  export "${key?}"
}

# Validates values whose shape we know, naming the variable but never printing a secret value.
validate_value() {
  local key="$1"
  case "$key" in
    DATABASE_URL)
      [[ "${DATABASE_URL:-}" =~ ^postgres(ql)?:// ]] \
        || die "DATABASE_URL must be a PostgreSQL URL starting with postgres:// or postgresql:// (value not shown)"
      ;;
    REDIS_PORT)
      if [ -n "${REDIS_PORT:-}" ]; then
        if ! [[ "$REDIS_PORT" =~ ^[0-9]{1,5}$ ]] || [ "$REDIS_PORT" -lt 1 ] || [ "$REDIS_PORT" -gt 65535 ]; then
          die "REDIS_PORT='$REDIS_PORT' is not a port number (expected 1-65535)"
        fi
      fi
      ;;
  esac
}

# Decides where each key's value comes from and exports the ones that must be written.
# A key left unset in the environment keeps its stored value.
resolve_keys() {
  local name="$1" existing="$2" keyspec key policy visibility
  shift 2
  for keyspec in "$@"; do
    IFS=: read -r key policy visibility <<<"$keyspec"
    # An empty variable counts as unset, so a blank line in a CI config cannot wipe a stored value.
    if [ -z "${!key:-}" ]; then
      unset "$key"
    fi
    if [ "$key" = JARVIS_AUTH_TOKEN ] && [ "$rotate_token" = 1 ] && [ -z "${JARVIS_AUTH_TOKEN:-}" ]; then
      JARVIS_AUTH_TOKEN="$(generate_token)"
      export JARVIS_AUTH_TOKEN
      info "$name: JARVIS_AUTH_TOKEN will be rotated (--rotate-auth-token)"
      continue
    fi
    if [ -n "${!key:-}" ]; then
      validate_value "$key"
      continue
    fi
    if jq -e --arg k "$key" 'has($k)' "$existing" >/dev/null; then
      continue # keep the stored value
    fi
    case "$policy" in
      required)
        if [ "$interactive" = 1 ]; then
          prompt_value "$key" "$visibility" ""
          [ -n "${!key:-}" ] || die "$key is required for $name"
          validate_value "$key"
        else
          die "$key is not set and $name does not hold it yet: export $key (no terminal attached, so it cannot be asked for)"
        fi
        ;;
      optional)
        if [ "$interactive" = 1 ]; then
          prompt_value "$key" "$visibility" " (optional, Enter leaves it empty)"
        fi
        printf -v "$key" '%s' "${!key:-}"
        export "${key?}"
        ;;
      default=*)
        if [ "$interactive" = 1 ]; then
          prompt_value "$key" "$visibility" " (Enter for ${policy#default=})"
        fi
        if [ -z "${!key:-}" ]; then
          printf -v "$key" '%s' "${policy#default=}"
        fi
        export "${key?}"
        validate_value "$key"
        ;;
      generate)
        printf -v "$key" '%s' "$(generate_token)"
        export "${key?}"
        info "$name: a new $key $(outcome generated) (read it with: aws secretsmanager get-secret-value --secret-id $name --query SecretString --output text)"
        ;;
      *) die "internal error: unknown policy '$policy' for $key" ;;
    esac
  done
}

# Fetches the current JSON of a secret into $2 ("{}" when the secret has no value yet).
# Prints "missing", "present" or "deleted" on stdout. One call in the usual cases.
fetch_secret() {
  local name="$1" out="$2" err="$JARVIS_TMP_DIR/err"
  printf '{}' >"$out"
  if [ "$DRY_RUN" = 1 ]; then
    show_call "[dry-run] would run:" aws secretsmanager get-secret-value --secret-id "$name"
    echo missing
    return 0
  fi
  if aws secretsmanager get-secret-value --secret-id "$name" --query SecretString --output text \
    >"$out" 2>"$err"; then
    jq -e 'type == "object"' "$out" >/dev/null 2>&1 \
      || die "secret $name exists but does not hold a JSON object; fix or delete it first (its value is not shown)"
    echo present
    return 0
  fi
  printf '{}' >"$out"
  if grep -qE 'marked (for )?delet' "$err"; then
    echo deleted
    return 0
  fi
  grep -q 'ResourceNotFoundException' "$err" || die "could not read secret $name: $(tr '\n' ' ' <"$err")"
  # Either no such secret, or a secret that has no value yet.
  if aws secretsmanager describe-secret --secret-id "$name" --query ARN --output text >/dev/null 2>"$err"; then
    echo present
  elif grep -q 'ResourceNotFoundException' "$err"; then
    echo missing
  else
    die "could not read secret $name: $(tr '\n' ' ' <"$err")"
  fi
}

ensure_secret() {
  local suffix="$1" description="$2" keyspecs="$3"
  local name="jarvis/$env_name/$suffix"
  local existing="$JARVIS_TMP_DIR/$suffix.current.json" wanted="$JARVIS_TMP_DIR/$suffix.json"
  local state keys=() specs=() keyspec
  read -r -a specs <<<"$keyspecs"
  for keyspec in "${specs[@]}"; do
    keys+=("${keyspec%%:*}")
  done

  state="$(fetch_secret "$name" "$existing")"
  if [ "$state" = deleted ]; then
    info "$name is scheduled for deletion; restoring it"
    aws_do secretsmanager restore-secret --secret-id "$name" >/dev/null
    state="$(fetch_secret "$name" "$existing")"
  fi

  resolve_keys "$name" "$existing" "${specs[@]}"

  # Stored keys that this script does not manage are kept as they are.
  jq -ncj --slurpfile current "$existing" '
    reduce $ARGS.positional[] as $k ($current[0];
      . + {($k): (if env[$k] != null then env[$k] else .[$k] end)})
  ' --args "${keys[@]}" >"$wanted" </dev/null

  if [ "$state" = missing ]; then
    local create=(secretsmanager create-secret --name "$name" --description "$description"
      --secret-string "file://$wanted"
      --tags "Key=project,Value=jarvis" "Key=environment,Value=$env_name")
    if [ -n "${JARVIS_SECRETS_KMS_KEY_ID:-}" ]; then
      create+=(--kms-key-id "$JARVIS_SECRETS_KMS_KEY_ID")
    fi
    aws_do "${create[@]}" >/dev/null
    info "$name: $(outcome created) (keys: $(jq -r 'keys_unsorted | join(", ")' "$wanted"))"
    return 0
  fi

  local changed
  changed="$(jq -r --slurpfile new "$wanted" '
    . as $old | [$new[0] | keys_unsorted[] | select($old[.] != $new[0][.])] | join(", ")
  ' "$existing")"
  if [ -z "$changed" ]; then
    info "$name: unchanged"
    return 0
  fi
  aws_do secretsmanager put-secret-value --secret-id "$name" --secret-string "file://$wanted" >/dev/null
  info "$name: $(outcome updated) (changed keys: $changed)"
}

main() {
  validate_env_name "$env_name"
  require_aws_cli
  require_jq
  resolve_region
  make_private_tmp
  trap restore_terminal_and_clean_up EXIT
  if [ "$DRY_RUN" = 1 ]; then
    info "dry run: no AWS call is made; secret values are never shown"
  else
    local account
    account="$(resolve_account_id)"
    info "account $account, region $AWS_REGION${AWS_ENDPOINT_URL:+, endpoint $AWS_ENDPOINT_URL}"
  fi
  if [ "$interactive" = 0 ]; then
    info "no terminal attached: values come from the environment only"
  fi

  local spec suffix description keyspecs
  for spec in "${SECRET_SPECS[@]}"; do
    IFS='|' read -r suffix description keyspecs <<<"$spec"
    ensure_secret "$suffix" "$description" "$keyspecs"
  done
  if [ "$DRY_RUN" = 1 ]; then
    info "dry run done: nothing was changed"
  else
    info "done: secrets jarvis/$env_name/{database,redis,ai-keys,app} are in place in $AWS_REGION"
  fi
}

main
