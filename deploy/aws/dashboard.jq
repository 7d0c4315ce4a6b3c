# The CloudWatch dashboard of one Jarvis environment, as a jq program rendered by
# scripts/deploy-to-aws.sh into the DashboardBody of `aws cloudwatch put-dashboard`.
#
# Variables: $namespace (Jarvis's metric namespace, "Jarvis"), $dimensions (JSON array of
#   {Name, Value}: the dimensions of Jarvis's metrics, none by default), $region, $env,
#   $cluster, $service (ECS names), $alarm_arns (JSON array of the alarms' ARNs),
#   $backlog_target (the scaling policy's queued tasks per running task).
#
# Every metric is one Jarvis writes as an EMF line (see docs/api.md, Logs), except
# RunningTaskCount (ECS Container Insights), which the queue widget shows next to the backlog
# because the scaling policy divides one by the other. Several instances write the same metric
# without dimensions, so each widget picks the statistic that reads right across instances.

def dims: $dimensions | map(.Name, .Value);

# One metric line of a graph widget: [namespace, name, dimension name, value, ..., {options}].
def m($name; $options): [$namespace, $name] + dims + [$options];
def expr($id; $expression; $text): [{id: $id, expression: $expression, "label": $text}];

def graph($title; $metrics; $extra): {
  type: "metric",
  properties: ({
    title: $title,
    view: "timeSeries",
    stacked: false,
    region: $region,
    period: 60,
    metrics: $metrics
  } + $extra)
};
def graph($title; $metrics): graph($title; $metrics; {});

def line($text; $value): {horizontal: [{"label": $text, value: $value}]};

[
  graph("Open circuit breakers"; [
    m("CircuitBreakersOpen"; {stat: "Maximum", "label": "CircuitBreakersOpen (max)"})
  ]; {annotations: line("jarvis-circuit-open alarm"; 1), yAxis: {left: {min: 0}}}),
  graph("Circuit state changes and rejected calls"; [
    m("CircuitStateChanges"; {stat: "Sum", "label": "CircuitStateChanges"}),
    m("RejectedCalls"; {stat: "Sum", "label": "RejectedCalls"})
  ]; {yAxis: {left: {min: 0}}}),
  graph("Tasks per hour"; [
    m("TasksCompleted"; {id: "done", stat: "Sum", visible: false}),
    expr("fleet"; "done * 3600 / PERIOD(done)"; "tasks per hour, all instances (from TasksCompleted)"),
    m("TasksPerHour"; {stat: "Average", "label": "TasksPerHour, per instance (average)"})
  ]; {yAxis: {left: {min: 0}}}),
  graph("Task success rate (%)"; [
    m("TaskFailureRate"; {id: "failure", stat: "Average", visible: false}),
    expr("success"; "100 * (1 - failure)"; "success rate % (1 - TaskFailureRate)")
  ]; {annotations: line("jarvis-high-failure-rate alarm (failure rate 0.3)"; 70),
      yAxis: {left: {min: 0, max: 100}}}),
  graph("Task duration (ms)"; [
    m("TaskDurationMs"; {stat: "Average", "label": "TaskDurationMs (average)"}),
    m("TaskDurationMs"; {stat: "Maximum", "label": "TaskDurationMs (max)"})
  ]),
  graph("Cost per task (USD)"; [
    m("CostPerTask"; {stat: "Average", "label": "CostPerTask (average)"})
  ]),
  graph("API error rate (5xx / requests)"; [
    m("ErrorRate"; {stat: "Average", "label": "ErrorRate (average)"}),
    m("ErrorRate"; {stat: "Maximum", "label": "ErrorRate (max)"})
  ]; {yAxis: {left: {min: 0}}}),
  graph("API request latency (ms)"; [
    m("RequestLatencyMs"; {stat: "Average", "label": "RequestLatencyMs (average)"}),
    m("RequestLatencyMs"; {stat: "Maximum", "label": "RequestLatencyMs (max)"})
  ]),
  graph("Predicted trips (services whose trip forecast warns)"; [
    m("PredictedTrips"; {stat: "Maximum", "label": "PredictedTrips (max)"})
  ]; {yAxis: {left: {min: 0}}}),
  graph("Queue backlog and running tasks"; [
    m("QueuedTasks"; {id: "queued", stat: "Maximum", "label": "QueuedTasks (fleet-wide)"}),
    ["ECS/ContainerInsights", "RunningTaskCount", "ClusterName", $cluster, "ServiceName", $service,
      {id: "running", stat: "Average", "label": "RunningTaskCount", yAxis: "right"}],
    expr("backlog"; "queued / running"; "queued tasks per running task (what scaling tracks)")
  ]; {annotations: line("scaling target: \($backlog_target) per task"; $backlog_target),
      yAxis: {left: {min: 0}, right: {min: 0}}}),
  {
    type: "alarm",
    properties: {title: "Alarms", alarms: $alarm_arns}
  },
  {
    type: "text",
    properties: {markdown: "## Jarvis \($env)\nService `\($service)` in cluster `\($cluster)`, metrics in namespace `\($namespace)` (EMF lines of the tasks' logs). Scaling: CPU and queued tasks per running task; see docs/deploy.md."}
  }
]
| to_entries
| {
    widgets: map(.key as $i | .value + {x: (($i % 3) * 8), y: (($i / 3 | floor) * 6), width: 8, height: 6})
  }
