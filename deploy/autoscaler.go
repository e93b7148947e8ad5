package deploy

import (
	"fmt"

	"github.com/shoal-sh/shoal/config"
)

// Autoscalers Choose picks between.
const (
	// AutoscalerHPA is a HorizontalPodAutoscaler on CPU and memory (hpa.yaml).
	AutoscalerHPA = "hpa"
	// AutoscalerKEDA is a KEDA ScaledObject (scaledobject.yaml): CPU and memory plus
	// Prometheus triggers for the rules an HPA cannot express.
	AutoscalerKEDA = "keda"
)

// kedaMetrics are the auto_scaling metrics only a KEDA ScaledObject can scale on.
var kedaMetrics = map[string]bool{
	config.MetricResponseTimeP95:   true,
	config.MetricActiveConnections: true,
	config.MetricRequestQueueDepth: true,
	config.MetricJobQueueDepth:     true,
}

// Choose says which autoscaler the kubernetes and helm targets generate for c — only one, since
// an HPA and a ScaledObject for the same Deployment fight — and why, in a sentence for people.
// deploy.autoscaler decides; under "auto" (the default) it is KEDA when an enabled
// auto_scaling rule scales up on a metric an HPA cannot express, and an HPA otherwise.
func Choose(c *config.Config) (kind, why string) {
	switch c.Deploy.Autoscaler {
	case config.AutoscalerHPA:
		return AutoscalerHPA, "deploy.autoscaler is hpa"
	case config.AutoscalerKEDA:
		return AutoscalerKEDA, "deploy.autoscaler is keda"
	}
	if as := c.Observability.AutoScaling; as.Enabled {
		for i, r := range as.Metrics {
			if r.Action == config.ScaleUp && kedaMetrics[r.Metric] {
				return AutoscalerKEDA, fmt.Sprintf("observability.auto_scaling.metrics[%d] scales up on %s, which an HPA cannot express; set deploy.autoscaler: hpa for a plain HPA on CPU and memory", i, r.Metric)
			}
		}
	}
	return AutoscalerHPA, "no auto_scaling rule needs more than CPU and memory; set deploy.autoscaler: keda for a KEDA ScaledObject"
}

// autoscalerNote says which autoscaler the kubernetes and helm targets wrote, and why.
func (s *spec) autoscalerNote() {
	if !s.c.Scaling.Enabled {
		return
	}
	kind, why := Choose(s.c)
	what := "a HorizontalPodAutoscaler (hpa.yaml)"
	if kind == AutoscalerKEDA {
		what = "a KEDA ScaledObject (scaledobject.yaml; KEDA must be installed in the cluster)"
	}
	s.notes = append(s.notes, fmt.Sprintf("autoscaler: %s, not both: %s", what, why))
}
