package deploy

import (
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"sigs.k8s.io/yaml"

	"github.com/shoal-sh/shoal/config"
)

// TestHPA_BehaviorIsTheAutoscalersPolicy checks that the generated HPA behaves as the local
// fleet's autoscaler: the same windows, policies and select modes, the HPA's defaults when the
// configuration sets none.
func TestHPA_BehaviorIsTheAutoscalersPolicy(t *testing.T) {
	t.Parallel()
	hpaOf := func(t *testing.T, c *config.Config) *autoscalingv2.HorizontalPodAutoscaler {
		t.Helper()
		c.Deploy.Autoscaler = config.AutoscalerHPA
		out, err := Generate(c, "kubernetes", Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range out.Files {
			if f.Path == "hpa.yaml" {
				h := &autoscalingv2.HorizontalPodAutoscaler{}
				if err := yaml.UnmarshalStrict(f.Data, h); err != nil {
					t.Fatal(err)
				}
				return h
			}
		}
		t.Fatal("no hpa.yaml")
		return nil
	}
	t.Run("the HPA's defaults", func(t *testing.T) {
		t.Parallel()
		b := hpaOf(t, load(t, fixtures[2])).Spec.Behavior
		up, down := b.ScaleUp, b.ScaleDown
		if *up.StabilizationWindowSeconds != 300 || *down.StabilizationWindowSeconds != 300 {
			t.Errorf("windows %d/%d, want the seed's cooldowns 300/300", *up.StabilizationWindowSeconds, *down.StabilizationWindowSeconds)
		}
		if len(up.Policies) != 2 || up.Policies[0] != (autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15}) ||
			up.Policies[1] != (autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}) || *up.SelectPolicy != autoscalingv2.MaxChangePolicySelect {
			t.Errorf("scale-up %+v", up)
		}
		if len(down.Policies) != 1 || down.Policies[0] != (autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}) {
			t.Errorf("scale-down %+v", down)
		}
	})
	t.Run("configured policies", func(t *testing.T) {
		t.Parallel()
		c := load(t, fixtures[2])
		c.Scaling.Instances.ScaleDownCooldown = config.Duration(10 * time.Minute)
		c.Observability.AutoScaling.ScaleDown = config.ScalingBehavior{SelectPolicy: config.SelectMin, Policies: []config.RatePolicy{
			{Type: config.PolicyPods, Value: 2, Period: config.Duration(time.Minute)},
			{Type: config.PolicyPercent, Value: 10, Period: config.Duration(time.Minute)},
		}}
		c.Observability.AutoScaling.ScaleUp.SelectPolicy = config.SelectDisabled
		b := hpaOf(t, c).Spec.Behavior
		if *b.ScaleDown.StabilizationWindowSeconds != 600 || *b.ScaleDown.SelectPolicy != autoscalingv2.MinChangePolicySelect ||
			len(b.ScaleDown.Policies) != 2 || b.ScaleDown.Policies[0].Value != 2 || b.ScaleDown.Policies[0].PeriodSeconds != 60 {
			t.Errorf("scale-down %+v", b.ScaleDown)
		}
		if *b.ScaleUp.SelectPolicy != autoscalingv2.DisabledPolicySelect {
			t.Errorf("scale-up %+v", b.ScaleUp)
		}
	})
}
