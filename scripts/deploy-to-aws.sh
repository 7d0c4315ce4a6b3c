#!/usr/bin/env bash
# Deploys Jarvis to Amazon ECS on Fargate behind an existing load balancer target group.
#
#   scripts/deploy-to-aws.sh ENV [--image URI] [--min-tasks N] [--max-tasks N] [--dry-run]
#                            [--skip-migration] [--force-new-deployment]
#
# Steps, each idempotent (a step whose target already matches changes nothing):
#   1. preflight: aws CLI, jq, region, credentials, network settings, the four secrets of
#      scripts/create-aws-secrets.sh, the target group (type ip, attached to a load balancer)
#   2. ECR repository; image built with docker and pushed, unless --image URI is given
#   3. ECS cluster jarvis-ENV (JARVIS_ECS_CLUSTER overrides), with Container Insights
#   4. log group /ecs/jarvis with its retention
#   5. task definition (Fargate, awsvpc, secrets from Secrets Manager, awslogs, health check);
#      a new revision is registered only when the rendered definition differs from the latest one
#   6. database migration: a one-off task running `jarvis migrate`, waited for, must exit 0
#   7. service created or updated (rolling deployment with circuit breaker and rollback) behind
#      JARVIS_TARGET_GROUP_ARN, then waited for until stable
#   8. auto-scaling of the service (Application Auto Scaling): min/max tasks, target tracking
#      on CPU and on queued tasks per running task
#   9. CloudWatch alarms jarvis-circuit-open and jarvis-high-failure-rate
#  10. CloudWatch dashboard jarvis-ENV
#
# --dry-run prints every AWS call (and docker command) it would make and makes none.
set -euo pipefail

jarvis_script_name="deploy-to-aws.sh"
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$script_dir/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/deploy-to-aws.sh ENV [--image URI] [--min-tasks N] [--max-tasks N] [--dry-run]
                                [--skip-migration] [--force-new-deployment]

Required environment:
  JARVIS_SUBNETS              comma-separated subnet ids for the tasks (awsvpc)
  JARVIS_SECURITY_GROUPS      comma-separated security group ids for the tasks
  JARVIS_TARGET_GROUP_ARN     ALB/NLB target group (target type "ip") that fronts the service
  JARVIS_EXECUTION_ROLE_ARN   ECS task execution role (ECR pull, logs, secretsmanager:GetSecretValue)
  AWS_REGION                  or AWS_DEFAULT_REGION, or the CLI profile's region
Optional environment (defaults in brackets):
  JARVIS_ECS_CLUSTER [jarvis-ENV]   JARVIS_SERVICE_NAME [jarvis]   JARVIS_TASK_FAMILY [jarvis-ENV]
  JARVIS_ECR_REPOSITORY [jarvis]    JARVIS_IMAGE_TAG [git commit, else a timestamp]
  JARVIS_DESIRED_COUNT [the minimum on create; on update only applied when set]
  JARVIS_MIN_TASKS [2]  JARVIS_MAX_TASKS [10]   auto-scaling bounds (--min-tasks/--max-tasks win)
  JARVIS_SCALE_CPU_TARGET [60]        average CPU % the CPU policy holds the service at
  JARVIS_SCALE_BACKLOG_PER_TASK [100] queued tasks per running task the backlog policy holds
  JARVIS_SCALE_OUT_COOLDOWN_SECONDS [60]   JARVIS_SCALE_IN_COOLDOWN_SECONDS [300]
  JARVIS_CONTAINER_INSIGHTS [enabled: enabled, enhanced or disabled; the backlog policy reads
                            RunningTaskCount from Container Insights]
  JARVIS_DASHBOARD_NAME [jarvis-ENV]
  JARVIS_TASK_CPU [512]   JARVIS_TASK_MEMORY [1024]   JARVIS_CPU_ARCHITECTURE [X86_64]
  JARVIS_TASK_ROLE_ARN [none]       JARVIS_ASSIGN_PUBLIC_IP [DISABLED]
  JARVIS_RUNTIME_ENV [production]   LOG_LEVEL [info]
  JARVIS_LOG_GROUP [/ecs/jarvis]    JARVIS_LOG_RETENTION_DAYS [30]
  JARVIS_METRICS_NAMESPACE [Jarvis] JARVIS_ALARM_PREFIX [jarvis]
  JARVIS_ALARM_ACTIONS [none: comma-separated SNS topic ARNs]
  JARVIS_ALARM_DIMENSIONS [none: e.g. Environment=production,Service=jarvis]
  JARVIS_HEALTH_CHECK_GRACE_SECONDS [60]
  JARVIS_MIGRATION_TIMEOUT_SECONDS [900]   JARVIS_SERVICE_TIMEOUT_SECONDS [900]
  JARVIS_POLL_SECONDS [6]   JARVIS_WAIT_FOR_SERVICE [1]
  JARVIS_AWS_ACCOUNT_ID     only used by --dry-run, which makes no call to look it up
  AWS_ENDPOINT_URL          optional endpoint (for an emulator)
Options:
  --image URI               deploy this image; skip the docker build and push
  --min-tasks N             auto-scaling minimum (at least 1; default JARVIS_MIN_TASKS, 2)
  --max-tasks N             auto-scaling maximum (at least the minimum; default JARVIS_MAX_TASKS, 10)
  --dry-run                 print every AWS call and docker command; make none
  --skip-migration          do not run `jarvis migrate` before updating the service
  --force-new-deployment    roll the service even when nothing changed
EOF
}

env_name=""
image=""
skip_migration=0
force_new_deployment=0
min_tasks_flag=""
max_tasks_flag=""
# flag_value OPTION "$@": the value of `OPTION VALUE`, or a clear error when it is missing.
flag_value() {
  if [ "$#" -lt 3 ] || [ -z "$3" ]; then
    die "$1 needs a value (a whole number of tasks)"
  fi
  printf '%s' "$3"
}
while [ "$#" -gt 0 ]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --image)
      if [ "$#" -lt 2 ] || [ -z "$2" ]; then
        die "--image needs a value (an image URI)"
      fi
      image="$2"
      shift
      ;;
    --image=*) image="${1#--image=}" ;;
    --min-tasks)
      min_tasks_flag="$(flag_value "$1" "$@")"
      shift
      ;;
    --min-tasks=*) min_tasks_flag="$(flag_value --min-tasks --min-tasks "${1#--min-tasks=}")" ;;
    --max-tasks)
      max_tasks_flag="$(flag_value "$1" "$@")"
      shift
      ;;
    --max-tasks=*) max_tasks_flag="$(flag_value --max-tasks --max-tasks "${1#--max-tasks=}")" ;;
    --dry-run) DRY_RUN=1 ;;
    --skip-migration) skip_migration=1 ;;
    --force-new-deployment) force_new_deployment=1 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *)
      [ -z "$env_name" ] || die "unexpected argument '$1' (see --help)"
      env_name="$1"
      ;;
  esac
  shift
done

SECRET_SUFFIXES=(database redis ai-keys app)

# Configuration -------------------------------------------------------------------------------

load_settings() {
  cluster="${JARVIS_ECS_CLUSTER:-jarvis-$env_name}"
  service_name="${JARVIS_SERVICE_NAME:-jarvis}"
  task_family="${JARVIS_TASK_FAMILY:-jarvis-$env_name}"
  ecr_repository="${JARVIS_ECR_REPOSITORY:-jarvis}"
  min_tasks="${min_tasks_flag:-${JARVIS_MIN_TASKS:-2}}"
  max_tasks="${max_tasks_flag:-${JARVIS_MAX_TASKS:-10}}"
  desired_count_on_create="${JARVIS_DESIRED_COUNT:-$min_tasks}"
  scale_cpu_target="${JARVIS_SCALE_CPU_TARGET:-60}"
  scale_backlog_per_task="${JARVIS_SCALE_BACKLOG_PER_TASK:-100}"
  scale_out_cooldown="${JARVIS_SCALE_OUT_COOLDOWN_SECONDS:-60}"
  scale_in_cooldown="${JARVIS_SCALE_IN_COOLDOWN_SECONDS:-300}"
  container_insights="${JARVIS_CONTAINER_INSIGHTS:-enabled}"
  dashboard_name="${JARVIS_DASHBOARD_NAME:-jarvis-$env_name}"
  task_cpu="${JARVIS_TASK_CPU:-512}"
  task_memory="${JARVIS_TASK_MEMORY:-1024}"
  cpu_architecture="${JARVIS_CPU_ARCHITECTURE:-X86_64}"
  task_role_arn="${JARVIS_TASK_ROLE_ARN:-}"
  assign_public_ip="${JARVIS_ASSIGN_PUBLIC_IP:-DISABLED}"
  runtime_env="${JARVIS_RUNTIME_ENV:-production}"
  log_level="${LOG_LEVEL:-info}"
  log_group="${JARVIS_LOG_GROUP:-/ecs/jarvis}"
  log_retention_days="${JARVIS_LOG_RETENTION_DAYS:-30}"
  metrics_namespace="${JARVIS_METRICS_NAMESPACE:-Jarvis}"
  alarm_prefix="${JARVIS_ALARM_PREFIX:-jarvis}"
  health_check_grace="${JARVIS_HEALTH_CHECK_GRACE_SECONDS:-60}"
  migration_timeout="${JARVIS_MIGRATION_TIMEOUT_SECONDS:-900}"
  service_timeout="${JARVIS_SERVICE_TIMEOUT_SECONDS:-900}"
  poll_seconds="${JARVIS_POLL_SECONDS:-6}"
  wait_for_service="${JARVIS_WAIT_FOR_SERVICE:-1}"
  container_port=4000

  local n
  for n in task_cpu task_memory log_retention_days health_check_grace migration_timeout \
    service_timeout poll_seconds desired_count_on_create min_tasks max_tasks scale_out_cooldown \
    scale_in_cooldown; do
    [[ "${!n}" =~ ^[0-9]+$ ]] || die "$(setting_name "$n")='${!n}' is not a whole number"
  done
  # Auto-scaling bounds: Application Auto Scaling keeps the desired count in [min, max].
  [ "$((10#$min_tasks))" -ge 1 ] \
    || die "$(setting_name min_tasks)=$min_tasks: the minimum number of tasks must be at least 1"
  [ "$((10#$max_tasks))" -ge "$((10#$min_tasks))" ] \
    || die "$(setting_name max_tasks)=$max_tasks is below the minimum $(setting_name min_tasks)=$min_tasks"
  min_tasks="$((10#$min_tasks))"
  max_tasks="$((10#$max_tasks))"
  if [ -n "${JARVIS_DESIRED_COUNT:-}" ] \
    && { [ "$((10#$JARVIS_DESIRED_COUNT))" -lt "$min_tasks" ] || [ "$((10#$JARVIS_DESIRED_COUNT))" -gt "$max_tasks" ]; }; then
    die "JARVIS_DESIRED_COUNT=$JARVIS_DESIRED_COUNT is outside the auto-scaling range $min_tasks-$max_tasks (--min-tasks/--max-tasks); auto-scaling would move it back"
  fi
  if ! positive_number "$scale_cpu_target" || ! awk -v v="$scale_cpu_target" 'BEGIN { exit !(v <= 100) }'; then
    die "JARVIS_SCALE_CPU_TARGET='$scale_cpu_target' must be a number of percent above 0 and at most 100"
  fi
  positive_number "$scale_backlog_per_task" \
    || die "JARVIS_SCALE_BACKLOG_PER_TASK='$scale_backlog_per_task' must be a number above 0 (queued tasks per running task)"
  case "$container_insights" in enabled | enhanced | disabled) ;; *) die "JARVIS_CONTAINER_INSIGHTS='$container_insights' must be enabled, enhanced or disabled" ;; esac
  [[ "$dashboard_name" =~ ^[A-Za-z0-9_-]{1,255}$ ]] \
    || die "JARVIS_DASHBOARD_NAME='$dashboard_name' may hold only A-Z, a-z, 0-9, '-' and '_'"
  case "$assign_public_ip" in ENABLED | DISABLED) ;; *) die "JARVIS_ASSIGN_PUBLIC_IP='$assign_public_ip' must be ENABLED or DISABLED" ;; esac
  case "$cpu_architecture" in X86_64 | ARM64) ;; *) die "JARVIS_CPU_ARCHITECTURE='$cpu_architecture' must be X86_64 or ARM64" ;; esac
  case "$runtime_env" in production | development) ;; *) die "JARVIS_RUNTIME_ENV='$runtime_env' must be production or development" ;; esac
}

setting_name() {
  case "$1" in
    task_cpu) echo JARVIS_TASK_CPU ;;
    task_memory) echo JARVIS_TASK_MEMORY ;;
    log_retention_days) echo JARVIS_LOG_RETENTION_DAYS ;;
    health_check_grace) echo JARVIS_HEALTH_CHECK_GRACE_SECONDS ;;
    migration_timeout) echo JARVIS_MIGRATION_TIMEOUT_SECONDS ;;
    service_timeout) echo JARVIS_SERVICE_TIMEOUT_SECONDS ;;
    poll_seconds) echo JARVIS_POLL_SECONDS ;;
    desired_count_on_create) echo JARVIS_DESIRED_COUNT ;;
    min_tasks) if [ -n "$min_tasks_flag" ]; then echo --min-tasks; else echo JARVIS_MIN_TASKS; fi ;;
    max_tasks) if [ -n "$max_tasks_flag" ]; then echo --max-tasks; else echo JARVIS_MAX_TASKS; fi ;;
    scale_out_cooldown) echo JARVIS_SCALE_OUT_COOLDOWN_SECONDS ;;
    scale_in_cooldown) echo JARVIS_SCALE_IN_COOLDOWN_SECONDS ;;
    *) echo "$1" ;;
  esac
}

# A decimal number above 0 (a target value), such as 60 or 0.5.
positive_number() {
  [[ "$1" =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v v="$1" 'BEGIN { exit !(v > 0) }'
}

# "a, b ,c" -> JSON array ["a","b","c"]
csv_to_json() {
  jq -cn --arg csv "$1" '$csv | split(",") | map(gsub("^\\s+|\\s+$"; "")) | map(select(length > 0))'
}

# Preflight -----------------------------------------------------------------------------------

check_network_settings() {
  local missing=() v
  for v in JARVIS_SUBNETS JARVIS_SECURITY_GROUPS JARVIS_TARGET_GROUP_ARN JARVIS_EXECUTION_ROLE_ARN; do
    [ -n "${!v:-}" ] || missing+=("$v")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    die "missing required environment: ${missing[*]} (see --help and docs/deploy.md)"
  fi
  subnets_json="$(csv_to_json "$JARVIS_SUBNETS")"
  security_groups_json="$(csv_to_json "$JARVIS_SECURITY_GROUPS")"
  jq -e 'length > 0 and all(test("^subnet-[0-9a-f]+$"))' <<<"$subnets_json" >/dev/null \
    || die "JARVIS_SUBNETS='$JARVIS_SUBNETS' must be comma-separated subnet ids (subnet-...)"
  jq -e 'length > 0 and all(test("^sg-[0-9a-f]+$"))' <<<"$security_groups_json" >/dev/null \
    || die "JARVIS_SECURITY_GROUPS='$JARVIS_SECURITY_GROUPS' must be comma-separated security group ids (sg-...)"
  [[ "$JARVIS_TARGET_GROUP_ARN" =~ ^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:targetgroup/ ]] \
    || die "JARVIS_TARGET_GROUP_ARN='$JARVIS_TARGET_GROUP_ARN' is not a target group ARN (arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/...)"
  [[ "$JARVIS_EXECUTION_ROLE_ARN" =~ ^arn:aws[a-z-]*:iam::[0-9]{12}:role/ ]] \
    || die "JARVIS_EXECUTION_ROLE_ARN='$JARVIS_EXECUTION_ROLE_ARN' is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/...)"
  if [ -n "$task_role_arn" ]; then
    [[ "$task_role_arn" =~ ^arn:aws[a-z-]*:iam::[0-9]{12}:role/ ]] \
      || die "JARVIS_TASK_ROLE_ARN='$task_role_arn' is not an IAM role ARN"
  fi
}

check_docker() {
  [ -n "$image" ] && return 0
  command -v docker >/dev/null 2>&1 \
    || die "docker was not found, so the image cannot be built; install Docker, or deploy an existing image with --image URI"
  if [ "$DRY_RUN" = 1 ]; then
    return 0
  fi
  docker info >/dev/null 2>&1 \
    || die "docker is installed but its daemon is not reachable ('docker info' failed), so the image cannot be built; start Docker, or deploy an existing image with --image URI"
}

# Fills secret_arns_json with {"database": ARN, ...}; fails naming the first missing secret.
# One list-secrets call (it leaves out secrets scheduled for deletion).
check_secrets() {
  local suffix name arn listed err="$JARVIS_TMP_DIR/err" arns="{}"
  if [ "$DRY_RUN" = 1 ]; then
    show_call "[dry-run] would run:" aws secretsmanager list-secrets --filters "Key=name,Values=jarvis/$env_name/"
    listed="[]"
  elif ! listed="$(aws secretsmanager list-secrets --filters "Key=name,Values=jarvis/$env_name/" \
    --query 'SecretList[].{name: Name, arn: ARN}' --output json 2>"$err")"; then
    die "could not list the secrets jarvis/$env_name/*: $(tr '\n' ' ' <"$err")"
  fi
  for suffix in "${SECRET_SUFFIXES[@]}"; do
    name="jarvis/$env_name/$suffix"
    if [ "$DRY_RUN" = 1 ]; then
      arn="arn:aws:secretsmanager:$AWS_REGION:$account_id:secret:$name"
    else
      arn="$(jq -r --arg n "$name" '[.[] | select(.name == $n) | .arn][0] // empty' <<<"$listed")"
      [ -n "$arn" ] \
        || die "secret $name does not exist in $AWS_REGION (or is scheduled for deletion); create it first: scripts/create-aws-secrets.sh $env_name"
    fi
    arns="$(jq -c --arg k "$suffix" --arg v "$arn" '. + {($k): $v}' <<<"$arns")"
  done
  secret_arns_json="$arns"
}

check_target_group() {
  local tg err="$JARVIS_TMP_DIR/err"
  if [ "$DRY_RUN" = 1 ]; then
    show_call "[dry-run] would run:" aws elbv2 describe-target-groups --target-group-arns "$JARVIS_TARGET_GROUP_ARN"
    return 0
  fi
  if ! tg="$(aws elbv2 describe-target-groups --target-group-arns "$JARVIS_TARGET_GROUP_ARN" \
    --query 'TargetGroups[0]' --output json 2>"$err")"; then
    die "target group JARVIS_TARGET_GROUP_ARN=$JARVIS_TARGET_GROUP_ARN was not found: $(tr '\n' ' ' <"$err")"
  fi
  [ "$(jq -r '.TargetType // "instance"' <<<"$tg")" = ip ] \
    || die "target group $JARVIS_TARGET_GROUP_ARN has target type '$(jq -r '.TargetType' <<<"$tg")'; Fargate tasks (awsvpc) need a target group of type 'ip'"
  jq -e '(.LoadBalancerArns // []) | length > 0' <<<"$tg" >/dev/null \
    || die "target group $JARVIS_TARGET_GROUP_ARN is not attached to a load balancer; add a listener (rule) that forwards to it first"
  local path
  path="$(jq -r '.HealthCheckPath // ""' <<<"$tg")"
  if [ -n "$path" ] && [ "$path" != /health ]; then
    warn "target group health check path is '$path'; Jarvis answers on /health"
  fi
}

check_subnets_and_groups() {
  local err="$JARVIS_TMP_DIR/err" ids
  if [ "$DRY_RUN" = 1 ]; then
    read -r -a ids <<<"$(jq -r 'join(" ")' <<<"$subnets_json")"
    show_call "[dry-run] would run:" aws ec2 describe-subnets --subnet-ids "${ids[@]}"
    read -r -a ids <<<"$(jq -r 'join(" ")' <<<"$security_groups_json")"
    show_call "[dry-run] would run:" aws ec2 describe-security-groups --group-ids "${ids[@]}"
    return 0
  fi
  read -r -a ids <<<"$(jq -r 'join(" ")' <<<"$subnets_json")"
  aws ec2 describe-subnets --subnet-ids "${ids[@]}" --query 'Subnets[].SubnetId' --output text \
    >/dev/null 2>"$err" || die "JARVIS_SUBNETS: $(tr '\n' ' ' <"$err")"
  read -r -a ids <<<"$(jq -r 'join(" ")' <<<"$security_groups_json")"
  aws ec2 describe-security-groups --group-ids "${ids[@]}" --query 'SecurityGroups[].GroupId' \
    --output text >/dev/null 2>"$err" || die "JARVIS_SECURITY_GROUPS: $(tr '\n' ' ' <"$err")"
}

# Comparison ----------------------------------------------------------------------------------

# `jq` definitions shared by the "does AWS already hold what we want?" checks. subset(a; b) holds
# when every value in the wanted document a is present and equal in the described document b
# (AWS adds defaults of its own to what it describes); an empty array matches a missing field.
# shellcheck disable=SC2016 # a jq program: its $variables are jq's, not the shell's
JQ_SUBSET='
def subset($a; $b):
  if ($a | type) == "object" then
    ($b | type) == "object" and all($a | to_entries[]; . as $e | subset($e.value; $b[$e.key]))
  elif ($a | type) == "array" then
    if ($a | length) == 0 then ($b == null or $b == [])
    else ($b | type) == "array" and ($a | length) == ($b | length)
      and all(range(0; $a | length); . as $i | subset($a[$i]; $b[$i]))
    end
  else $a == $b
  end;
'

# Steps ---------------------------------------------------------------------------------------

ensure_ecr_repository() {
  local out err="$JARVIS_TMP_DIR/err"
  if out="$(aws_read ecr describe-repositories --repository-names "$ecr_repository" \
    --query 'repositories[0].repositoryUri' --output text 2>"$err")"; then
    repository_uri="$out"
    info "ECR repository $ecr_repository: exists ($repository_uri)"
    return 0
  fi
  if [ "$DRY_RUN" != 1 ] && ! grep -q RepositoryNotFoundException "$err"; then
    die "could not read ECR repository $ecr_repository: $(tr '\n' ' ' <"$err")"
  fi
  repository_uri="$(aws_do ecr create-repository --repository-name "$ecr_repository" \
    --image-scanning-configuration scanOnPush=true --image-tag-mutability MUTABLE \
    --tags Key=project,Value=jarvis --query 'repository.repositoryUri' --output text)"
  if [ "$DRY_RUN" = 1 ]; then
    repository_uri="$account_id.dkr.ecr.$AWS_REGION.amazonaws.com/$ecr_repository"
  fi
  info "ECR repository $ecr_repository: $(outcome created) ($repository_uri)"
}

image_tag() {
  if [ -n "${JARVIS_IMAGE_TAG:-}" ]; then
    printf '%s\n' "$JARVIS_IMAGE_TAG"
    return 0
  fi
  local sha
  if sha="$(git -C "$repo_root" rev-parse --short=12 HEAD 2>/dev/null)"; then
    if [ -n "$(git -C "$repo_root" status --porcelain 2>/dev/null)" ]; then
      sha="$sha-dirty-$(date -u +%Y%m%d%H%M%S)"
    fi
    printf '%s\n' "$sha"
  else
    date -u +%Y%m%d%H%M%S
  fi
}

run_docker() {
  if [ "$DRY_RUN" = 1 ]; then
    show_call "[dry-run] would run:" docker "$@"
    return 0
  fi
  show_call "+" docker "$@"
  docker "$@"
}

build_and_push_image() {
  if [ -n "$image" ]; then
    info "image: $image (--image given: no build, no push)"
    return 0
  fi
  image="$repository_uri:$(image_tag)"
  local registry="${repository_uri%%/*}"
  info "building $image from $repo_root"
  # Build for the CPU the tasks run on, whatever the CPU of this machine (e.g. an ARM laptop).
  local platform=linux/amd64
  [ "$cpu_architecture" = ARM64 ] && platform=linux/arm64
  run_docker build --pull --platform "$platform" --tag "$image" --file "$repo_root/Dockerfile" "$repo_root"
  # The registry password goes from the CLI to docker through a pipe, never onto a command line.
  if [ "$DRY_RUN" = 1 ]; then
    show_call "[dry-run] would run:" aws ecr get-login-password
    show_call "[dry-run]   piped to:" docker login --username AWS --password-stdin "$registry"
  else
    show_call "+" aws ecr get-login-password "|" docker login --username AWS --password-stdin "$registry"
    aws ecr get-login-password | docker login --username AWS --password-stdin "$registry" >/dev/null
  fi
  run_docker push "$image"
}

ensure_cluster() {
  local current status insights
  if current="$(aws_read ecs describe-clusters --clusters "$cluster" --include SETTINGS \
    --query 'clusters[0]' --output json)" && [ "$current" != null ] \
    && status="$(jq -r '.status' <<<"$current")" && [ "$status" = ACTIVE ]; then
    info "ECS cluster $cluster: exists"
    insights="$(jq -r '[(.settings // [])[] | select(.name == "containerInsights") | .value][0] // "disabled"' <<<"$current")"
    if [ "$insights" = "$container_insights" ] || { [ "$container_insights" = enabled ] && [ "$insights" = enhanced ]; }; then
      info "ECS cluster $cluster: Container Insights unchanged ($insights)"
    else
      aws_do ecs update-cluster --cluster "$cluster" \
        --settings "name=containerInsights,value=$container_insights" >/dev/null
      info "ECS cluster $cluster: Container Insights $(outcome updated) ($insights -> $container_insights)"
    fi
    return 0
  fi
  aws_do ecs create-cluster --cluster-name "$cluster" \
    --settings "name=containerInsights,value=$container_insights" \
    --tags key=project,value=jarvis "key=environment,value=$env_name" >/dev/null
  info "ECS cluster $cluster: $(outcome created) (Container Insights $container_insights)"
}

ensure_log_group() {
  local current retention
  if current="$(aws_read logs describe-log-groups --log-group-name-prefix "$log_group" \
    --query "logGroups[?logGroupName=='$log_group'] | [0]" --output json)" \
    && [ "$current" != null ] && [ -n "$current" ]; then
    retention="$(jq -r '.retentionInDays // "never"' <<<"$current")"
    info "log group $log_group: exists"
  else
    aws_do logs create-log-group --log-group-name "$log_group" --tags project=jarvis >/dev/null
    info "log group $log_group: $(outcome created)"
    retention=never
  fi
  if [ "$retention" = "$log_retention_days" ]; then
    info "log group $log_group: retention already $log_retention_days days"
  else
    aws_do logs put-retention-policy --log-group-name "$log_group" \
      --retention-in-days "$log_retention_days"
    info "log group $log_group: retention $(outcome set) to $log_retention_days days"
  fi
}

render_task_definition() {
  jq -n \
    --arg family "$task_family" --arg image "$image" --arg region "$AWS_REGION" \
    --arg env "$env_name" --arg runtime_env "$runtime_env" --arg log_group "$log_group" \
    --arg log_level "$log_level" --arg cpu "$task_cpu" --arg memory "$task_memory" \
    --arg cpu_architecture "$cpu_architecture" \
    --arg execution_role_arn "$JARVIS_EXECUTION_ROLE_ARN" --arg task_role_arn "$task_role_arn" \
    --arg metrics_namespace "$metrics_namespace" --arg port "$container_port" \
    --argjson secret_arns "$secret_arns_json" \
    -f "$repo_root/deploy/aws/task-definition.jq"
}

register_task_definition() {
  local wanted="$JARVIS_TMP_DIR/task-definition.json" current
  render_task_definition >"$wanted"
  if current="$(aws_read ecs describe-task-definition --task-definition "$task_family" \
    --query taskDefinition --output json 2>/dev/null)" \
    && [ "$(jq -r '.status' <<<"$current")" = ACTIVE ] \
    && jq -e --slurpfile wanted "$wanted" "$JQ_SUBSET"'
      def norm: .containerDefinitions |= map(
        (.environment |= ((. // []) | sort_by(.name))) | (.secrets |= ((. // []) | sort_by(.name))));
      ($wanted[0] | del(.tags) | norm) as $w | (norm) as $c
      | ["family", "networkMode", "requiresCompatibilities", "cpu", "memory", "runtimePlatform",
         "executionRoleArn", "taskRoleArn", "containerDefinitions"] as $managed
      | subset($w; $c)
        and ($managed | map(select(. as $k | $w | has($k)))) == ($managed | map(select(. as $k | $c | has($k))))
    ' <<<"$current" >/dev/null; then
    task_definition_arn="$(jq -r '.taskDefinitionArn' <<<"$current")"
    info "task definition: unchanged, keeping $task_definition_arn"
    return 0
  fi
  show_file_for_dry_run "task definition" "$wanted"
  task_definition_arn="$(aws_do ecs register-task-definition --cli-input-json "file://$wanted" \
    --query taskDefinition.taskDefinitionArn --output text)"
  if [ "$DRY_RUN" = 1 ]; then
    task_definition_arn="arn:aws:ecs:$AWS_REGION:$account_id:task-definition/$task_family:NEXT"
  fi
  info "task definition: $(outcome registered) as $task_definition_arn"
}

write_network_configuration() {
  jq -n --argjson subnets "$subnets_json" --argjson groups "$security_groups_json" \
    --arg public "$assign_public_ip" \
    '{awsvpcConfiguration: {subnets: $subnets, securityGroups: $groups, assignPublicIp: $public}}' \
    >"$JARVIS_TMP_DIR/network.json"
}

run_migration() {
  if [ "$skip_migration" = 1 ]; then
    info "migration: skipped (--skip-migration)"
    return 0
  fi
  local overrides="$JARVIS_TMP_DIR/migrate-overrides.json" out task_arn
  jq -n '{containerOverrides: [{name: "jarvis", command: ["migrate"]}]}' >"$overrides"
  show_file_for_dry_run "migration overrides" "$overrides"
  show_file_for_dry_run "network configuration" "$JARVIS_TMP_DIR/network.json"
  out="$(aws_do ecs run-task --cluster "$cluster" --task-definition "$task_definition_arn" \
    --launch-type FARGATE --platform-version LATEST --count 1 --started-by jarvis-migrate \
    --network-configuration "file://$JARVIS_TMP_DIR/network.json" \
    --overrides "file://$overrides" --output json)"
  if [ "$DRY_RUN" = 1 ]; then
    show_call "[dry-run] would run (every ${poll_seconds}s until STOPPED, at most ${migration_timeout}s):" \
      aws ecs describe-tasks --cluster "$cluster" --tasks "<migration task arn>"
    return 0
  fi
  if jq -e '(.failures // []) | length > 0' <<<"$out" >/dev/null; then
    die "migration task could not start: $(jq -c '.failures' <<<"$out")"
  fi
  task_arn="$(jq -r '.tasks[0].taskArn // empty' <<<"$out")"
  [ -n "$task_arn" ] || die "migration task could not start: run-task returned no task"
  info "migration: started $task_arn; waiting for it to stop (at most ${migration_timeout}s)"

  local deadline=$((SECONDS + migration_timeout)) task status exit_code reason
  while :; do
    task="$(aws ecs describe-tasks --cluster "$cluster" --tasks "$task_arn" --query 'tasks[0]' --output json)"
    status="$(jq -r '.lastStatus // "UNKNOWN"' <<<"$task")"
    if [ "$status" = STOPPED ]; then
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "migration task $task_arn still $status after ${migration_timeout}s; see its logs in $log_group (stream $env_name/jarvis/${task_arn##*/})"
    fi
    sleep "$poll_seconds"
  done
  exit_code="$(jq -r '[.containers[]? | select(.name == "jarvis") | .exitCode][0] // "none"' <<<"$task")"
  reason="$(jq -r '.stoppedReason // ""' <<<"$task")"
  if [ "$exit_code" != 0 ]; then
    die "migration failed (exit code $exit_code${reason:+, $reason}); the service was not updated. Logs: $log_group, stream $env_name/jarvis/${task_arn##*/}"
  fi
  info "migration: done (exit code 0)"
}

ensure_service() {
  local load_balancers="$JARVIS_TMP_DIR/load-balancers.json"
  local deployment="$JARVIS_TMP_DIR/deployment-configuration.json" current status
  jq -n --arg tg "$JARVIS_TARGET_GROUP_ARN" --argjson port "$container_port" \
    '[{targetGroupArn: $tg, containerName: "jarvis", containerPort: $port}]' >"$load_balancers"
  # Rolling update: start the new tasks before stopping old ones (200/100), and roll back
  # automatically when the new tasks cannot become healthy.
  jq -n '{maximumPercent: 200, minimumHealthyPercent: 100,
          deploymentCircuitBreaker: {enable: true, rollback: true}}' >"$deployment"

  status=MISSING
  if current="$(aws_read ecs describe-services --cluster "$cluster" --services "$service_name" \
    --query 'services[0]' --output json)" && [ "$current" != null ]; then
    status="$(jq -r '.status' <<<"$current")"
  fi

  if [ "$status" != ACTIVE ]; then
    if [ "$status" = DRAINING ]; then
      die "service $service_name in $cluster is DRAINING (being deleted); wait until it is INACTIVE and run again"
    fi
    show_file_for_dry_run "load balancers" "$load_balancers"
    show_file_for_dry_run "deployment configuration" "$deployment"
    aws_do ecs create-service --cluster "$cluster" --service-name "$service_name" \
      --task-definition "$task_definition_arn" --desired-count "$desired_count_on_create" \
      --launch-type FARGATE --platform-version LATEST --scheduling-strategy REPLICA \
      --deployment-controller type=ECS \
      --deployment-configuration "file://$deployment" \
      --network-configuration "file://$JARVIS_TMP_DIR/network.json" \
      --load-balancers "file://$load_balancers" \
      --health-check-grace-period-seconds "$health_check_grace" \
      --propagate-tags SERVICE --enable-ecs-managed-tags \
      --tags key=project,value=jarvis "key=environment,value=$env_name" >/dev/null
    info "service $service_name: $(outcome created) in $cluster with $desired_count_on_create tasks"
    if [ "$DRY_RUN" = 1 ]; then
      info "(if the service already exists, update-service --task-definition <new> is called instead)"
    fi
    return 0
  fi

  # The service exists: update it only when something we manage differs.
  local wanted_desired="${JARVIS_DESIRED_COUNT:-}"
  if [ "$force_new_deployment" = 0 ] && jq -e \
    --arg td "$task_definition_arn" --arg tg "$JARVIS_TARGET_GROUP_ARN" --arg desired "$wanted_desired" \
    --argjson subnets "$subnets_json" --argjson groups "$security_groups_json" '
      .taskDefinition == $td
      and ([.loadBalancers[]?.targetGroupArn] == [$tg])
      and (($desired == "") or (.desiredCount == ($desired | tonumber)))
      and ((.networkConfiguration.awsvpcConfiguration.subnets // []) | sort) == ($subnets | sort)
      and ((.networkConfiguration.awsvpcConfiguration.securityGroups // []) | sort) == ($groups | sort)
    ' <<<"$current" >/dev/null; then
    info "service $service_name: unchanged (already on $task_definition_arn)"
    return 0
  fi
  local update=(ecs update-service --cluster "$cluster" --service "$service_name"
    --task-definition "$task_definition_arn"
    --deployment-configuration "file://$deployment"
    --network-configuration "file://$JARVIS_TMP_DIR/network.json"
    --load-balancers "file://$load_balancers"
    --health-check-grace-period-seconds "$health_check_grace")
  if [ -n "$wanted_desired" ]; then
    update+=(--desired-count "$wanted_desired")
  fi
  if [ "$force_new_deployment" = 1 ]; then
    update+=(--force-new-deployment)
  fi
  aws_do "${update[@]}" >/dev/null
  info "service $service_name: $(outcome updated) to $task_definition_arn (rolling deployment)"
}

wait_for_service_stable() {
  if [ "$DRY_RUN" = 1 ] || [ "$wait_for_service" != 1 ]; then
    [ "$DRY_RUN" = 1 ] && show_call "[dry-run] would run (every ${poll_seconds}s until stable, at most ${service_timeout}s):" \
      aws ecs describe-services --cluster "$cluster" --services "$service_name"
    return 0
  fi
  info "waiting for service $service_name to become stable (at most ${service_timeout}s; JARVIS_WAIT_FOR_SERVICE=0 skips)"
  local deadline=$((SECONDS + service_timeout)) svc rollout
  while :; do
    svc="$(aws ecs describe-services --cluster "$cluster" --services "$service_name" --query 'services[0]' --output json)"
    rollout="$(jq -r '[.deployments[]? | select(.status == "PRIMARY") | .rolloutState][0] // "COMPLETED"' <<<"$svc")"
    if [ "$rollout" = FAILED ]; then
      die "deployment of $service_name failed (ECS rolled it back): $(jq -r '[.deployments[]? | select(.status == "PRIMARY") | .rolloutStateReason][0] // ""' <<<"$svc")"
    fi
    if jq -e '(.deployments | length) == 1 and .runningCount == .desiredCount' <<<"$svc" >/dev/null \
      && [ "$rollout" = COMPLETED ]; then
      info "service $service_name: stable ($(jq -r '.runningCount' <<<"$svc") running)"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      die "service $service_name not stable after ${service_timeout}s ($(jq -r '"\(.runningCount)/\(.desiredCount) running"' <<<"$svc")); see: aws ecs describe-services --cluster $cluster --services $service_name"
    fi
    sleep "$poll_seconds"
  done
}

dimensions_json() {
  jq -cn --arg csv "${JARVIS_ALARM_DIMENSIONS:-}" '
    $csv | split(",") | map(select(length > 0) | split("=")
      | if length == 2 then {Name: .[0], Value: .[1]}
        else error("JARVIS_ALARM_DIMENSIONS must look like Name=Value,Name=Value") end)'
}

ensure_alarms() {
  local alarms="$JARVIS_TMP_DIR/alarms.json" dims actions count i input name current
  dims="$(dimensions_json)" || die "JARVIS_ALARM_DIMENSIONS='${JARVIS_ALARM_DIMENSIONS:-}' must look like Name=Value,Name=Value"
  actions="$(csv_to_json "${JARVIS_ALARM_ACTIONS:-}")"
  jq -n --arg prefix "$alarm_prefix" --arg namespace "$metrics_namespace" --arg env "$env_name" \
    --argjson actions "$actions" --argjson dimensions "$dims" \
    -f "$repo_root/deploy/aws/alarms.jq" >"$alarms"
  count="$(jq 'length' "$alarms")"
  local names=()
  read -r -a names <<<"$(jq -r 'map(.AlarmName) | join(" ")' "$alarms")"
  alarm_names_json="$(jq -c 'map(.AlarmName)' "$alarms")"
  local existing="[]"
  if ! existing="$(aws_read cloudwatch describe-alarms --alarm-names "${names[@]}" --alarm-types MetricAlarm \
    --query 'MetricAlarms' --output json)"; then
    existing="[]"
  fi
  for ((i = 0; i < count; i++)); do
    input="$JARVIS_TMP_DIR/alarm-$i.json"
    jq ".[$i]" "$alarms" >"$input"
    name="$(jq -r '.AlarmName' "$input")"
    current="$(jq -c --arg n "$name" '[.[] | select(.AlarmName == $n)][0]' <<<"$existing")"
    if jq -e --slurpfile wanted "$input" "$JQ_SUBSET"'subset($wanted[0] | del(.Tags); .)' \
      <<<"$current" >/dev/null; then
      info "alarm $name: unchanged"
      continue
    fi
    show_file_for_dry_run "alarm $name" "$input"
    aws_do cloudwatch put-metric-alarm --cli-input-json "file://$input"
    info "alarm $name: $(outcome set): $(jq -r '"\(.MetricName) \(.ComparisonOperator) \(.Threshold) in namespace \(.Namespace)"' "$input")"
  done
}

# The scalable target and the two target-tracking policies of deploy/aws/scaling.jq. Each is
# written only when what AWS describes differs from it; policies of other names are left alone.
ensure_autoscaling() {
  local scaling="$JARVIS_TMP_DIR/scaling.json" target="$JARVIS_TMP_DIR/scalable-target.json"
  local dims resource_id current existing count i input name
  dims="$(dimensions_json)" || die "JARVIS_ALARM_DIMENSIONS='${JARVIS_ALARM_DIMENSIONS:-}' must look like Name=Value,Name=Value"
  jq -n --arg cluster "$cluster" --arg service "$service_name" --arg namespace "$metrics_namespace" \
    --argjson dimensions "$dims" --argjson min "$min_tasks" --argjson max "$max_tasks" \
    --argjson cpu_target "$scale_cpu_target" --argjson backlog_target "$scale_backlog_per_task" \
    --argjson scale_out_cooldown "$scale_out_cooldown" --argjson scale_in_cooldown "$scale_in_cooldown" \
    -f "$repo_root/deploy/aws/scaling.jq" >"$scaling"
  jq '.target' "$scaling" >"$target"
  resource_id="$(jq -r '.ResourceId' "$target")"

  if current="$(aws_read application-autoscaling describe-scalable-targets --service-namespace ecs \
    --resource-ids "$resource_id" --scalable-dimension ecs:service:DesiredCount \
    --query 'ScalableTargets[0]' --output json)" && [ "$current" != null ] \
    && jq -e --slurpfile wanted "$target" "$JQ_SUBSET"'subset($wanted[0]; .)' <<<"$current" >/dev/null; then
    info "auto-scaling target $resource_id: unchanged ($min_tasks-$max_tasks tasks)"
  else
    show_file_for_dry_run "scalable target" "$target"
    aws_do application-autoscaling register-scalable-target --cli-input-json "file://$target" >/dev/null
    info "auto-scaling target $resource_id: $(outcome registered) ($min_tasks-$max_tasks tasks)"
  fi
  if [ -n "$current" ] && jq -e '(.SuspendedState // {}) | any(.[]; . == true)' <<<"$current" >/dev/null 2>&1; then
    warn "auto-scaling of $resource_id is suspended ($(jq -c '.SuspendedState' <<<"$current")); this script leaves that as it is"
  fi

  if ! existing="$(aws_read application-autoscaling describe-scaling-policies --service-namespace ecs \
    --resource-id "$resource_id" --scalable-dimension ecs:service:DesiredCount \
    --query 'ScalingPolicies' --output json)"; then
    existing="[]"
  fi
  count="$(jq '.policies | length' "$scaling")"
  for ((i = 0; i < count; i++)); do
    input="$JARVIS_TMP_DIR/scaling-policy-$i.json"
    jq ".policies[$i]" "$scaling" >"$input"
    name="$(jq -r '.PolicyName' "$input")"
    current="$(jq -c --arg n "$name" '[.[] | select(.PolicyName == $n)][0]' <<<"$existing")"
    if jq -e --slurpfile wanted "$input" "$JQ_SUBSET"'
      . != null and .PolicyType == $wanted[0].PolicyType
      and subset($wanted[0].TargetTrackingScalingPolicyConfiguration; .TargetTrackingScalingPolicyConfiguration)
    ' <<<"$current" >/dev/null; then
      info "scaling policy $name: unchanged"
      continue
    fi
    show_file_for_dry_run "scaling policy $name" "$input"
    aws_do application-autoscaling put-scaling-policy --cli-input-json "file://$input" >/dev/null
    info "scaling policy $name: $(outcome set): $(jq -r '.TargetTrackingScalingPolicyConfiguration
      | "target tracking, \(if .PredefinedMetricSpecification then "average CPU \(.TargetValue)%"
         else "\(.TargetValue) queued tasks per running task" end)"' "$input")"
  done
  if [ "$container_insights" = disabled ]; then
    warn "JARVIS_CONTAINER_INSIGHTS=disabled: the policy jarvis-queue-backlog divides by RunningTaskCount of Container Insights, so it gets no data and never scales"
  fi
}

# The dashboard of deploy/aws/dashboard.jq, written only when the body AWS holds differs
# (compared as JSON, so key order and spacing do not count).
ensure_dashboard() {
  local body="$JARVIS_TMP_DIR/dashboard.json" dims alarm_arns current messages
  dims="$(dimensions_json)" || die "JARVIS_ALARM_DIMENSIONS='${JARVIS_ALARM_DIMENSIONS:-}' must look like Name=Value,Name=Value"
  alarm_arns="$(jq -c --arg region "$AWS_REGION" --arg account "$account_id" '
    (if ($region | startswith("cn-")) then "aws-cn" elif ($region | startswith("us-gov-")) then "aws-us-gov"
     else "aws" end) as $partition
    | map("arn:\($partition):cloudwatch:\($region):\($account):alarm:\(.)")' <<<"$alarm_names_json")"
  jq -n --arg namespace "$metrics_namespace" --argjson dimensions "$dims" --arg region "$AWS_REGION" \
    --arg env "$env_name" --arg cluster "$cluster" --arg service "$service_name" \
    --argjson alarm_arns "$alarm_arns" --argjson backlog_target "$scale_backlog_per_task" \
    -f "$repo_root/deploy/aws/dashboard.jq" >"$body"
  if current="$(aws_read cloudwatch get-dashboard --dashboard-name "$dashboard_name" \
    --query DashboardBody --output json 2>/dev/null)" \
    && jq -e --slurpfile wanted "$body" 'fromjson == $wanted[0]' <<<"$current" >/dev/null 2>&1; then
    info "dashboard $dashboard_name: unchanged"
    return 0
  fi
  show_file_for_dry_run "dashboard $dashboard_name" "$body"
  messages="$(aws_do cloudwatch put-dashboard --dashboard-name "$dashboard_name" \
    --dashboard-body "file://$body" --query DashboardValidationMessages --output json)"
  if [ -n "$messages" ] && jq -e 'length > 0' <<<"$messages" >/dev/null 2>&1; then
    warn "dashboard $dashboard_name: CloudWatch reported: $(jq -c . <<<"$messages")"
  fi
  info "dashboard $dashboard_name: $(outcome set) ($(jq '.widgets | length' "$body") widgets): https://$AWS_REGION.console.aws.amazon.com/cloudwatch/home?region=$AWS_REGION#dashboards:name=$dashboard_name"
}

main() {
  validate_env_name "$env_name"
  require_aws_cli
  require_jq
  load_settings
  check_network_settings
  resolve_region
  check_docker
  make_private_tmp
  if [ "$DRY_RUN" = 1 ]; then
    account_id="${JARVIS_AWS_ACCOUNT_ID:-ACCOUNT_ID}"
    info "dry run: printing every AWS call and docker command; none is made (reads are shown and assumed to find nothing)"
    show_call "[dry-run] would run:" aws sts get-caller-identity
  else
    account_id="$(resolve_account_id)"
  fi
  info "deploying ENV=$env_name to account $account_id, region $AWS_REGION${AWS_ENDPOINT_URL:+, endpoint $AWS_ENDPOINT_URL}"
  check_secrets
  check_target_group
  check_subnets_and_groups

  ensure_ecr_repository
  build_and_push_image
  ensure_cluster
  ensure_log_group
  register_task_definition
  write_network_configuration
  run_migration
  ensure_service
  wait_for_service_stable
  ensure_autoscaling
  ensure_alarms
  ensure_dashboard
  if [ "$DRY_RUN" = 1 ]; then
    info "dry run done: nothing was changed"
  else
    info "done: $service_name in cluster $cluster runs $task_definition_arn (image $image)"
  fi
}

main
