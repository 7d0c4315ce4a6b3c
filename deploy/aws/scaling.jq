# The auto-scaling of the Jarvis ECS service, as a jq program rendered by scripts/deploy-to-aws.sh:
# {target: input of `aws application-autoscaling register-scalable-target --cli-input-json`,
#  policies: [input of `aws application-autoscaling put-scaling-policy --cli-input-json`, ...]}.
#
# Variables: $cluster, $service (ECS names), $namespace (Jarvis's metric namespace, "Jarvis"),
#   $dimensions (JSON array of {Name, Value}: the dimensions of Jarvis's metrics, none by default),
#   $min, $max (task counts), $cpu_target (percent), $backlog_target (queued tasks per running
#   task), $scale_out_cooldown, $scale_in_cooldown (seconds).
#
# Two target-tracking policies on one scalable target; Application Auto Scaling runs both and
# takes the larger task count, and scales in only when both allow it:
#   - CPU: the service's average CPU utilization (predefined metric) held near $cpu_target.
#   - Queue backlog per running task: QueuedTasks (Jarvis's EMF metric, tasks queued or waiting,
#     fleet-wide) divided by RunningTaskCount (ECS/ContainerInsights, so the cluster needs
#     Container Insights), held near $backlog_target, so a backlog adds workers before CPU shows it.
#     Every instance writes the same fleet-wide QueuedTasks, hence the Maximum statistic.

def resource_id: "service/\($cluster)/\($service)";

def scalable: {
  ServiceNamespace: "ecs",
  ResourceId: resource_id,
  ScalableDimension: "ecs:service:DesiredCount"
};

def target_tracking($name; $config): scalable + {
  PolicyName: $name,
  PolicyType: "TargetTrackingScaling",
  TargetTrackingScalingPolicyConfiguration: ($config + {
    ScaleOutCooldown: $scale_out_cooldown,
    ScaleInCooldown: $scale_in_cooldown,
    DisableScaleIn: false
  })
};

def metric($ns; $name; $dims):
  {Namespace: $ns, MetricName: $name} + (if ($dims | length) > 0 then {Dimensions: $dims} else {} end);

{
  target: (scalable + {MinCapacity: $min, MaxCapacity: $max}),
  policies: [
    target_tracking("jarvis-cpu"; {
      TargetValue: $cpu_target,
      PredefinedMetricSpecification: {PredefinedMetricType: "ECSServiceAverageCPUUtilization"}
    }),
    target_tracking("jarvis-queue-backlog"; {
      TargetValue: $backlog_target,
      CustomizedMetricSpecification: {
        Metrics: [
          {
            Id: "queued",
            MetricStat: {Metric: metric($namespace; "QueuedTasks"; $dimensions), Stat: "Maximum"},
            ReturnData: false
          },
          {
            Id: "running",
            MetricStat: {
              Metric: metric("ECS/ContainerInsights"; "RunningTaskCount";
                [{Name: "ClusterName", Value: $cluster}, {Name: "ServiceName", Value: $service}]),
              Stat: "Average"
            },
            ReturnData: false
          },
          {
            Id: "backlog_per_task",
            Expression: "queued / running",
            Label: "Queued tasks per running Jarvis task",
            ReturnData: true
          }
        ]
      }
    })
  ]
}
