# The CloudWatch alarms of Jarvis, as a jq program rendered by scripts/deploy-to-aws.sh into the
# input of `aws cloudwatch put-metric-alarm --cli-input-json`.
#
# Variables: $prefix (alarm name prefix, "jarvis"), $namespace (metric namespace, "Jarvis"),
#   $env, $actions (JSON array of SNS topic ARNs), $dimensions (JSON array of {Name, Value}).
#
# The metrics come from the Embedded Metric Format lines that Jarvis writes to its log, so the
# alarm's namespace and dimensions must be exactly the ones Jarvis emits. Both alarms treat
# missing data as not breaching: no EMF line means no open circuit and no failed task.

def alarm($name; $metric; $statistic; $op; $threshold; $period; $evaluations; $description): {
  AlarmName: "\($prefix)-\($name)",
  AlarmDescription: $description,
  ActionsEnabled: true,
  AlarmActions: $actions,
  OKActions: $actions,
  Namespace: $namespace,
  MetricName: $metric,
  Dimensions: $dimensions,
  Statistic: $statistic,
  Period: $period,
  EvaluationPeriods: $evaluations,
  DatapointsToAlarm: $evaluations,
  Threshold: $threshold,
  ComparisonOperator: $op,
  TreatMissingData: "notBreaching",
  Tags: [{Key: "project", Value: "jarvis"}, {Key: "environment", Value: $env}]
};

[
  alarm("circuit-open"; "CircuitBreakersOpen"; "Maximum"; "GreaterThanOrEqualToThreshold"; 1; 60; 1;
    "Jarvis (\($env)): at least one circuit breaker is OPEN - a dependency is failing and calls to it are rejected."),
  alarm("high-failure-rate"; "TaskFailureRate"; "Average"; "GreaterThanThreshold"; 0.3; 300; 1;
    "Jarvis (\($env)): more than 30% of tasks failed over 5 minutes (TaskFailureRate is a fraction 0-1).")
]
