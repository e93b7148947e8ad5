package telemetry

import (
	"encoding/json"
	"fmt"

	"github.com/shoal-sh/shoal/config"
)

// The dashboard is built from small structs rather than a Grafana SDK: the JSON model is
// stable, and a generator needs only the parts it writes.

type dashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	Description   string         `json:"description"`
	Tags          []string       `json:"tags"`
	Timezone      string         `json:"timezone"`
	SchemaVersion int            `json:"schemaVersion"`
	Version       int            `json:"version"`
	Editable      bool           `json:"editable"`
	Refresh       string         `json:"refresh"`
	Time          map[string]any `json:"time"`
	Templating    map[string]any `json:"templating"`
	Annotations   map[string]any `json:"annotations"`
	Panels        []panel        `json:"panels"`
	Links         []any          `json:"links"`
	FiscalYear    int            `json:"fiscalYearStartMonth"`
	GraphTooltip  int            `json:"graphTooltip"`
}

type panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description,omitempty"`
	GridPos     gridPos        `json:"gridPos"`
	Datasource  map[string]any `json:"datasource,omitempty"`
	Targets     []target       `json:"targets,omitempty"`
	FieldConfig map[string]any `json:"fieldConfig,omitempty"`
	Options     map[string]any `json:"options,omitempty"`
	Collapsed   *bool          `json:"collapsed,omitempty"`
	Panels      []panel        `json:"panels,omitempty"`
}

type gridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

type target struct {
	RefID        string         `json:"refId"`
	Expr         string         `json:"expr"`
	LegendFormat string         `json:"legendFormat,omitempty"`
	Datasource   map[string]any `json:"datasource,omitempty"`
}

var datasource = map[string]any{"type": "prometheus", "uid": "${datasource}"}

// step is one threshold of a panel: a colour from value on. The first step has no value.
type step struct {
	color string
	value *float64
}

func at(v float64) *float64 { return &v }

func fieldConfig(unit string, steps []step, lines bool) map[string]any {
	var st []map[string]any
	for _, s := range steps {
		st = append(st, map[string]any{"color": s.color, "value": s.value})
	}
	custom := map[string]any{"lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": false}
	if lines {
		custom["thresholdsStyle"] = map[string]any{"mode": "dashed"}
	}
	return map[string]any{
		"defaults": map[string]any{
			"unit":       unit,
			"thresholds": map[string]any{"mode": "absolute", "steps": st},
			"custom":     custom,
		},
		"overrides": []any{},
	}
}

// thresholdSteps colours a metric by the scale rules on it: above a scale_up threshold red,
// below a scale_down threshold blue, with the target (percent metrics) in yellow.
func thresholdSteps(cfg *config.Config, seed string, target int) []step {
	m, _ := LookupScaling(seed)
	steps := []step{{color: "green"}}
	for _, r := range cfg.Observability.AutoScaling.Metrics {
		if r.Metric != seed {
			continue
		}
		color := "red"
		if r.Action == config.ScaleDown {
			color = "blue"
		}
		steps = append(steps, step{color: color, value: at(m.ToPrometheus(r.Threshold))})
	}
	if target > 0 {
		steps = append(steps, step{color: "yellow", value: at(m.ToPrometheus(float64(target)))})
	}
	return steps
}

// GrafanaDashboard returns a Grafana dashboard (JSON model, schema version 39) for the service
// cfg describes: traffic, errors and latency from the HTTP middleware, each scaling metric with
// the thresholds of its auto_scaling rules and targets drawn as lines, instances against
// min_instances and max_instances, health checks and readiness, and process resources. It asks
// for a Prometheus data source when imported and selects job="<name>" (a dashboard variable).
func GrafanaDashboard(cfg *config.Config) ([]byte, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("generating the Grafana dashboard: the configuration has no name")
	}
	sel := `{job="$job"}`
	selWith := func(extra string) string { return `{job="$job",` + extra + `}` }
	gcfg := *cfg
	gcfg.Name = "$job"
	in := cfg.Scaling.Instances

	var panels []panel
	y := 0
	id := 0
	row := func(title string) {
		id++
		panels = append(panels, panel{ID: id, Type: "row", Title: title, GridPos: gridPos{H: 1, W: 24, Y: y}, Collapsed: new(bool)})
		y++
	}
	// add lays panels out two per row, 12 wide and 8 high.
	x := 0
	add := func(p panel) {
		id++
		p.ID = id
		if p.Type == "" {
			p.Type = "timeseries"
		}
		p.Datasource = datasource
		for i := range p.Targets {
			p.Targets[i].RefID = string(rune('A' + i))
			p.Targets[i].Datasource = datasource
		}
		p.GridPos = gridPos{H: 8, W: 12, X: x, Y: y}
		if x == 0 {
			x = 12
		} else {
			x, y = 0, y+8
		}
		panels = append(panels, p)
	}
	flush := func() {
		if x != 0 {
			x, y = 0, y+8
		}
	}

	row("Traffic")
	add(panel{Title: "Requests per second by status", Description: "shoal_http_requests_total",
		Targets:     []target{{Expr: fmt.Sprintf("sum by (code) (rate(%s%s[$__rate_interval]))", MetricRequests, sel), LegendFormat: "{{code}}"}},
		FieldConfig: fieldConfig("reqps", []step{{color: "green"}}, false)})
	add(panel{Title: "Error ratio (5xx)", Description: "Share of requests answered 5xx; the ShoalHighErrorRate alert fires above 5%.",
		Targets: []target{{Expr: fmt.Sprintf("sum(rate(%s%s[$__rate_interval])) / sum(rate(%s%s[$__rate_interval]))",
			MetricRequests, selWith(`code=~"5.."`), MetricRequests, sel), LegendFormat: "5xx"}},
		FieldConfig: fieldConfig("percentunit", []step{{color: "green"}, {color: "red", value: at(0.05)}}, true)})
	add(panel{Title: "Latency", Description: "Quantiles of shoal_http_request_duration_seconds over all instances; dashed: response_time_p95 rules.",
		Targets: []target{
			{Expr: p95Expr(&gcfg, "0.5", "$__rate_interval"), LegendFormat: "p50"},
			{Expr: p95Expr(&gcfg, "0.95", "$__rate_interval"), LegendFormat: "p95"},
			{Expr: p95Expr(&gcfg, "0.99", "$__rate_interval"), LegendFormat: "p99"},
			{Expr: "shoal_response_time_p95_seconds" + sel, LegendFormat: "p95 (1m window) {{instance}}"},
		},
		FieldConfig: fieldConfig("s", thresholdSteps(cfg, config.MetricResponseTimeP95, 0), true)})
	add(panel{Title: "Requests in flight", Description: "shoal_http_requests_in_flight and shoal_request_queue_depth per instance.",
		Targets: []target{
			{Expr: "sum(" + MetricInFlight + sel + ")", LegendFormat: "in flight"},
			{Expr: "shoal_request_queue_depth" + sel, LegendFormat: "queue {{instance}}"},
		},
		FieldConfig: fieldConfig("short", thresholdSteps(cfg, config.MetricRequestQueueDepth, 0), true)})
	flush()

	row("Scaling")
	add(panel{Title: "Instances", Description: fmt.Sprintf("sum(shoal_instances); dashed: min_instances %d (red below) and max_instances %d (orange at).", in.MinInstances, in.MaxInstances),
		Targets: []target{{Expr: "sum(shoal_instances" + sel + ")", LegendFormat: "instances"}},
		FieldConfig: fieldConfig("short", []step{{color: "red"}, {color: "green", value: at(float64(in.MinInstances))},
			{color: "orange", value: at(float64(in.MaxInstances))}}, true)})
	add(panel{Title: "CPU utilization", Description: fmt.Sprintf("shoal_cpu_utilization_ratio; dashed: scale rules (red up, blue down) and target %d%% (yellow).", in.TargetCPUUtilization),
		Targets: []target{
			{Expr: "avg(shoal_cpu_utilization_ratio" + sel + ")", LegendFormat: "average"},
			{Expr: "shoal_cpu_utilization_ratio" + sel, LegendFormat: "{{instance}}"},
		},
		FieldConfig: fieldConfig("percentunit", thresholdSteps(cfg, config.MetricCPUUtilization, in.TargetCPUUtilization), true)})
	add(panel{Title: "Memory utilization", Description: fmt.Sprintf("shoal_memory_utilization_ratio; dashed: scale rules and target %d%% (yellow).", in.TargetMemoryUtilization),
		Targets: []target{
			{Expr: "avg(shoal_memory_utilization_ratio" + sel + ")", LegendFormat: "average"},
			{Expr: "shoal_memory_utilization_ratio" + sel, LegendFormat: "{{instance}}"},
		},
		FieldConfig: fieldConfig("percentunit", thresholdSteps(cfg, config.MetricMemoryUtilization, in.TargetMemoryUtilization), true)})
	add(panel{Title: "Active connections", Description: "shoal_active_connections; dashed: active_connections rules (per-instance average).",
		Targets: []target{
			{Expr: "avg(shoal_active_connections" + sel + ")", LegendFormat: "average"},
			{Expr: "shoal_active_connections" + sel, LegendFormat: "{{instance}}"},
		},
		FieldConfig: fieldConfig("short", thresholdSteps(cfg, config.MetricActiveConnections, 0), true)})
	flush()

	row("Health")
	add(panel{Type: "state-timeline", Title: "Health checks", Description: "shoal_health_check_up: 1 passing, 0 failing, per check and instance.",
		Targets: []target{{Expr: healthCheckUp + sel, LegendFormat: "{{check}} {{instance}}"}},
		FieldConfig: map[string]any{"defaults": map[string]any{
			"mappings": []any{map[string]any{"type": "value", "options": map[string]any{
				"0": map[string]any{"text": "fail", "color": "red"},
				"1": map[string]any{"text": "pass", "color": "green"},
			}}},
			"thresholds": map[string]any{"mode": "absolute", "steps": []any{map[string]any{"color": "red", "value": nil}, map[string]any{"color": "green", "value": 1}}},
		}, "overrides": []any{}}})
	add(panel{Title: "Ready instances", Description: "sum(shoal_health_ready): instances whose critical checks pass and that are not draining.",
		Targets:     []target{{Expr: "sum(" + healthReady + sel + ")", LegendFormat: "ready"}},
		FieldConfig: fieldConfig("short", []step{{color: "red"}, {color: "green", value: at(float64(in.MinInstances))}}, true)})
	flush()

	row("Process")
	add(panel{Title: "Process CPU", Description: "rate(process_cpu_seconds_total): CPU cores used per instance.",
		Targets:     []target{{Expr: "rate(process_cpu_seconds_total" + sel + "[$__rate_interval])", LegendFormat: "{{instance}}"}},
		FieldConfig: fieldConfig("short", []step{{color: "green"}}, false)})
	add(panel{Title: "Process memory", Description: "process_resident_memory_bytes per instance.",
		Targets:     []target{{Expr: "process_resident_memory_bytes" + sel, LegendFormat: "{{instance}}"}},
		FieldConfig: fieldConfig("bytes", []step{{color: "green"}}, false)})
	flush()

	uid := "shoal-" + cfg.Name
	if len(uid) > 40 {
		uid = uid[:40]
	}
	d := dashboard{
		UID:           uid,
		Title:         cfg.Name + " (shoal)",
		Description:   "Generated by `shoal generate grafana` from " + cfg.Name + "'s shoal.yml.",
		Tags:          []string{"shoal", cfg.Name},
		Timezone:      "browser",
		SchemaVersion: 39,
		Version:       1,
		Editable:      true,
		Refresh:       "30s",
		Time:          map[string]any{"from": "now-1h", "to": "now"},
		Annotations:   map[string]any{"list": []any{}},
		Links:         []any{},
		GraphTooltip:  1,
		Templating: map[string]any{"list": []any{
			map[string]any{"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "hide": 0},
			map[string]any{"name": "job", "label": "Job", "type": "textbox", "query": cfg.Name,
				"current": map[string]any{"text": cfg.Name, "value": cfg.Name}, "hide": 0},
		}},
		Panels: panels,
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("generating the Grafana dashboard: %w", err)
	}
	return append(b, '\n'), nil
}
