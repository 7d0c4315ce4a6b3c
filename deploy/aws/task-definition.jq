# The ECS task definition of Jarvis, as a jq program (scripts/deploy-to-aws.sh renders it with
# `jq -n --arg ... -f deploy/aws/task-definition.jq`). Every value that varies by environment is
# a jq variable, so nothing is substituted as text and nothing can break the JSON.
#
# Variables: $family $image $region $env $runtime_env $log_group $log_level $cpu $memory
#   $cpu_architecture $execution_role_arn $task_role_arn ("" for none) $metrics_namespace
#   $port (string) $secret_arns (JSON object: database/redis/ai-keys/app -> secret ARN)
#
# Secrets are injected by ECS from Secrets Manager with the "ARN:JSON-KEY::" form, one
# environment variable per JSON key, so the container sees exactly the variables Jarvis reads.

def secret($secret; $key): {name: $key, valueFrom: "\($secret_arns[$secret]):\($key)::"};

{
  family: $family,
  networkMode: "awsvpc",
  requiresCompatibilities: ["FARGATE"],
  cpu: $cpu,
  memory: $memory,
  runtimePlatform: {operatingSystemFamily: "LINUX", cpuArchitecture: $cpu_architecture},
  executionRoleArn: $execution_role_arn,
  containerDefinitions: [
    {
      name: "jarvis",
      image: $image,
      essential: true,
      # The container may use all of the task's memory. (Optional on Fargate; set explicitly so
      # that the definition is complete for every tool, the local emulator included.)
      memory: ($memory | tonumber),
      command: ["serve"],
      portMappings: [{containerPort: ($port | tonumber), hostPort: ($port | tonumber), protocol: "tcp"}],
      environment: ([
        {name: "JARVIS_ENV", value: $runtime_env},
        {name: "JARVIS_DEPLOYMENT", value: $env},
        {name: "JARVIS_PORT", value: $port},
        {name: "LOG_LEVEL", value: $log_level},
        {name: "JARVIS_METRICS_NAMESPACE", value: $metrics_namespace}
      ] | sort_by(.name)),
      secrets: ([
        secret("database"; "DATABASE_URL"),
        secret("redis"; "REDIS_HOST"),
        secret("redis"; "REDIS_PORT"),
        secret("redis"; "REDIS_PASSWORD"),
        secret("ai-keys"; "OPENAI_API_KEY"),
        secret("ai-keys"; "ANTHROPIC_API_KEY"),
        secret("ai-keys"; "GEMINI_API_KEY"),
        secret("app"; "JARVIS_AUTH_TOKEN")
      ] | sort_by(.name)),
      logConfiguration: {
        logDriver: "awslogs",
        options: {
          "awslogs-group": $log_group,
          "awslogs-region": $region,
          "awslogs-stream-prefix": $env,
          "mode": "non-blocking",
          "max-buffer-size": "25m"
        }
      },
      healthCheck: {
        command: ["CMD", "/usr/local/bin/jarvis", "healthcheck"],
        interval: 30,
        timeout: 5,
        retries: 3,
        startPeriod: 30
      },
      # Jarvis finishes in-flight requests for up to JARVIS_SHUTDOWN_GRACE_MS (30 s) after SIGTERM.
      stopTimeout: 45
    }
  ],
  tags: [{key: "project", value: "jarvis"}, {key: "environment", value: $env}]
}
| if $task_role_arn == "" then . else . + {taskRoleArn: $task_role_arn} end
