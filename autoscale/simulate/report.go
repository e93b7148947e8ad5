package simulate

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-sh/shoal/autoscale"
	"github.com/shoal-sh/shoal/config"
)

// The charts are drawn by hand as SVG: four panels of polylines, axes and markers are a few
// hundred lines, and a plotting library (gonum/plot, go-echarts) would bring fonts, image
// encoders or a JavaScript bundle into the binary for them.

// WriteText writes the summary and an hour-by-hour (or finer, for short traces) table.
func (r *Result) WriteText(w io.Writer) error {
	s := r.Summary
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "trace\t%s, %s, peak %s req/s\n", r.Trace, config.Duration(s.Duration), si(s.PeakRPS))
	fmt.Fprintf(tw, "model\t%s req/s per instance, start-up %s, service time %s\n", si(r.Model.Capacity), r.Model.Startup, r.Model.ServiceTime)
	fmt.Fprintf(tw, "instances\t%d to %d (bounds %d..%d), %.0f instance-hours, mean CPU %.0f%%\n", s.MinInstances, s.MaxInstances, r.Settings.Min, r.Settings.Max, s.InstanceHours, s.MeanCPU)
	fmt.Fprintf(tw, "scaling\t%d ups, %d downs in %d evaluations\n", s.ScaleUps, s.ScaleDowns, s.Evaluations)
	fmt.Fprintf(tw, "overload\t%d s overloaded, %s requests slow (%.3f%%), %s dropped (%.3f%%), worst p95 %s\n",
		s.OverloadedSeconds, si(s.Slow), pct(s.Slow, s.Requests), si(s.Dropped), pct(s.Dropped, s.Requests), ms(s.MaxP95))
	if s.AtMax > 0 {
		fmt.Fprintf(tw, "at max\t%d s at max_instances (%d): raise it if the overload falls there\n", s.AtMax, r.Settings.Max)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "FROM\tREQ/S (MEAN)\tINSTANCES\tREADY (MIN)\tCPU %\tP95 (MAX)\tDROPPED\tUPS\tDOWNS")
	step := 3600
	if len(r.Samples) <= 4*3600 {
		step = 600
	}
	if len(r.Samples) <= 3600 {
		step = 60
	}
	for from := 0; from < len(r.Samples); from += step {
		to := min(from+step, len(r.Samples))
		var rps, cpu, drop, p95 float64
		inst, ready := 0, math.MaxInt
		for _, x := range r.Samples[from:to] {
			rps += x.RPS
			cpu += x.CPU
			drop += x.Dropped
			p95 = max(p95, x.P95)
			inst = max(inst, x.Instances)
			ready = min(ready, x.Ready)
		}
		ups, downs := 0, 0
		for _, e := range r.Events {
			if e.T >= from && e.T < to {
				if e.Change == autoscale.ChangeUp {
					ups++
				} else {
					downs++
				}
			}
		}
		n := float64(to - from)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%s\t%s\t%d\t%d\n", clock(from), si(rps/n), inst, ready, cpu/n, ms(p95), si(drop), ups, downs)
	}
	return tw.Flush()
}

// jsonPoint is one interval of the JSON report.
type jsonPoint struct {
	T         int     `json:"t"`
	RPS       float64 `json:"rps"`
	Instances int     `json:"instances"`
	Ready     int     `json:"ready"`
	CPU       float64 `json:"cpu"`
	P95       float64 `json:"p95_ms"`
	Dropped   float64 `json:"dropped"`
	Slow      float64 `json:"slow"`
}

// WriteJSON writes the result with one point per evaluation interval (means, the most
// instances, the fewest ready, the worst p95, sums of dropped and slow requests).
func (r *Result) WriteJSON(w io.Writer) error {
	every := max(int(r.Settings.Interval/time.Second), 1)
	var pts []jsonPoint
	for from := 0; from < len(r.Samples); from += every {
		to := min(from+every, len(r.Samples))
		p := jsonPoint{T: from, Ready: math.MaxInt}
		for _, x := range r.Samples[from:to] {
			p.RPS += x.RPS
			p.CPU += x.CPU
			p.P95 = max(p.P95, x.P95)
			p.Dropped += x.Dropped
			if x.Overloaded() {
				p.Slow += x.Served
			}
			p.Instances = max(p.Instances, x.Instances)
			p.Ready = min(p.Ready, x.Ready)
		}
		n := float64(to - from)
		p.RPS, p.CPU = round(p.RPS/n, 1), round(p.CPU/n, 1)
		p.P95, p.Dropped, p.Slow = round(p.P95, 1), round(p.Dropped, 0), round(p.Slow, 0)
		pts = append(pts, p)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		*Result
		Series []jsonPoint `json:"series"`
	}{r, pts})
}

func round(v float64, digits int) float64 {
	f := math.Pow(10, float64(digits))
	return math.Round(v*f) / f
}

// Chart colours, chosen to stay apart for the common colour blindnesses.
const (
	colTraffic  = "#4c78a8"
	colCapacity = "#222222"
	colReady    = "#59a14f"
	colUp       = "#2f7d32"
	colDown     = "#e8710a"
	colOver     = "#d62728"
	colCPU      = "#7b4fa0"
	colP95      = "#b07aa1"
)

// WriteSVG draws the run: traffic and capacity, instances with each scale marked, CPU against
// its target, and p95 latency, over a shared time axis.
func (r *Result) WriteSVG(w io.Writer) error {
	c := newChart(r)
	_, err := io.WriteString(w, c.svg())
	return err
}

// WriteHTML writes a self-contained page: the summary, the chart, the settings and the scale
// events. It loads nothing from elsewhere.
func (r *Result) WriteHTML(w io.Writer) error {
	var b strings.Builder
	s := r.Summary
	esc := html.EscapeString
	b.WriteString(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>shoal scaling simulate — ` + esc(r.Trace) + `</title>
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1240px;padding:0 16px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#555;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin:12px 0 18px}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 12px}.card b{display:block;font-size:20px}.card span{color:#555;font-size:13px}
.bad b{color:#c62828}
table{border-collapse:collapse;width:100%;font-size:14px}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f6f6f6;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.up{color:#2f7d32;font-weight:600}.down{color:#e8710a;font-weight:600}
svg{width:100%;height:auto;border:1px solid #eee;border-radius:8px}
code{background:#f3f3f3;padding:1px 4px;border-radius:4px}
</style></head><body>
`)
	fmt.Fprintf(&b, "<h1>Autoscaling simulation: %s</h1>\n", esc(r.Trace))
	fmt.Fprintf(&b, `<p class="sub">%s at 1&nbsp;s resolution, peak %s req/s; %s req/s per instance, start-up %s, service time %s; evaluated every %s.</p>`+"\n",
		esc(config.Duration(s.Duration).String()), si(s.PeakRPS), si(r.Model.Capacity), r.Model.Startup, r.Model.ServiceTime, r.Settings.Interval)
	card := func(class, value, label string) {
		fmt.Fprintf(&b, `<div class="card %s"><b>%s</b><span>%s</span></div>`, class, esc(value), esc(label))
	}
	b.WriteString(`<div class="cards">`)
	card("", fmt.Sprintf("%d – %d", s.MinInstances, s.MaxInstances), fmt.Sprintf("instances (bounds %d – %d)", r.Settings.Min, r.Settings.Max))
	card("", fmt.Sprintf("%.0f", s.InstanceHours), "instance-hours")
	card("", fmt.Sprintf("%.0f%%", s.MeanCPU), "mean CPU of ready instances")
	card("", fmt.Sprintf("%d ↑  %d ↓", s.ScaleUps, s.ScaleDowns), fmt.Sprintf("scale events in %d evaluations", s.Evaluations))
	cls := ""
	if s.OverloadedSeconds > 0 {
		cls = "bad"
	}
	card(cls, fmt.Sprintf("%d s", s.OverloadedSeconds), fmt.Sprintf("overloaded; %.3f%% of requests slow", pct(s.Slow, s.Requests)))
	cls = ""
	if s.Dropped > 0 {
		cls = "bad"
	}
	card(cls, si(s.Dropped), fmt.Sprintf("requests dropped (%.3f%%)", pct(s.Dropped, s.Requests)))
	card("", ms(s.MaxP95), "worst p95 latency")
	b.WriteString("</div>\n")
	b.WriteString(newChart(r).svg())

	b.WriteString("<h2>Settings</h2>\n<table><tr><th>policy</th><th>value</th></tr>\n")
	row := func(k, v string) { fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td></tr>\n", esc(k), esc(v)) }
	st := r.Settings
	row("bounds", fmt.Sprintf("%d – %d instances", st.Min, st.Max))
	for _, t := range st.Targets {
		row("target "+t.Metric, fmt.Sprintf("%g (tolerance %g)", t.Value, st.Tolerance))
	}
	for _, ru := range st.Rules {
		row("rule", fmt.Sprintf("%s → %s by %d, cooldown %s", ru, ru.Action, ru.Step, ru.Cooldown))
	}
	row("scale-up", behavior(st.ScaleUp))
	row("scale-down", behavior(st.ScaleDown))
	b.WriteString("</table>\n")

	fmt.Fprintf(&b, "<h2>Scale events (%d)</h2>\n", len(r.Events))
	b.WriteString(`<table><tr><th>time</th><th>change</th><th>why</th></tr>` + "\n")
	for i, e := range r.Events {
		if i == 500 {
			fmt.Fprintf(&b, `<tr><td colspan="3">… %d more (-o json lists them all)</td></tr>`, len(r.Events)-i)
			break
		}
		arrow, class := "↑", "up"
		if e.Change == autoscale.ChangeDown {
			arrow, class = "↓", "down"
		}
		fmt.Fprintf(&b, `<tr><td class="n">%s</td><td class="n %s">%s %d → %d</td><td>%s</td></tr>`+"\n", clock(e.T), class, arrow, e.From, e.To, esc(e.Reason))
	}
	b.WriteString("</table>\n<p class=\"sub\">Made by <code>shoal scaling simulate</code>: the model of the fleet is described in package autoscale/simulate.</p>\n</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func behavior(b autoscale.Behavior) string {
	var ps []string
	for _, p := range b.Policies {
		if p.Percent {
			ps = append(ps, fmt.Sprintf("%d%% per %s", p.Value, p.Period))
		} else {
			ps = append(ps, fmt.Sprintf("%d instances per %s", p.Value, p.Period))
		}
	}
	return fmt.Sprintf("window %s; %s of %s", b.Window, b.Select, strings.Join(ps, ", "))
}

// chart lays the four panels out.
type chart struct {
	r              *Result
	width, left    float64
	right, plotW   float64
	buckets        int
	bucket         int // seconds per bucket
	panelH, gap    float64
	top            float64
	b              strings.Builder
	cpuTarget      float64
	hasCPUTarget   bool
	duration       int
	eventsUp, down []int
}

func newChart(r *Result) *chart {
	c := &chart{r: r, width: 1200, left: 78, right: 40, panelH: 165, gap: 62, top: 100, duration: len(r.Samples)}
	c.plotW = c.width - c.left - c.right
	c.buckets = int(c.plotW)
	c.bucket = max(1, int(math.Ceil(float64(c.duration)/float64(c.buckets))))
	c.buckets = int(math.Ceil(float64(c.duration) / float64(c.bucket)))
	for _, t := range r.Settings.Targets {
		if t.Metric == "cpu_utilization_percentage" {
			c.cpuTarget, c.hasCPUTarget = t.Value, true
		}
	}
	return c
}

func (c *chart) x(t float64) float64 { return c.left + t/float64(max(c.duration, 1))*c.plotW }

// series reduces a per-second value to one per bucket with agg ("mean" or "max").
func (c *chart) series(f func(Sample) float64, agg string) []float64 {
	out := make([]float64, c.buckets)
	for i := range out {
		from, to := i*c.bucket, min((i+1)*c.bucket, c.duration)
		v := 0.0
		for _, s := range c.r.Samples[from:to] {
			x := f(s)
			if agg == "max" {
				v = max(v, x)
			} else {
				v += x
			}
		}
		if agg != "max" && to > from {
			v /= float64(to - from)
		}
		out[i] = v
	}
	return out
}

func (c *chart) svg() string {
	r := c.r
	h := c.top + 4*c.panelH + 3*c.gap + 58
	fmt.Fprintf(&c.b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" font-family="system-ui,-apple-system,'Segoe UI',Roboto,sans-serif" role="img">`+"\n", c.width, h, c.width, h)
	fmt.Fprintf(&c.b, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	fmt.Fprintf(&c.b, `<text x="%.0f" y="30" font-size="20" font-weight="600" fill="#1d1d1f">Autoscaling simulation: %s</text>`+"\n", c.left, escape(r.Trace))
	s := r.Summary
	fmt.Fprintf(&c.b, `<text x="%.0f" y="52" font-size="14" fill="#444">%s req/s per instance · start-up %s · instances %d–%d · %d ↑ %d ↓ · %d s overloaded · %s dropped</text>`+"\n",
		c.left, si(r.Model.Capacity), r.Model.Startup, s.MinInstances, s.MaxInstances, s.ScaleUps, s.ScaleDowns, s.OverloadedSeconds, si(s.Dropped))

	for _, e := range r.Events {
		if e.Change == autoscale.ChangeUp {
			c.eventsUp = append(c.eventsUp, e.T)
		} else {
			c.down = append(c.down, e.T)
		}
	}
	over := c.series(func(s Sample) float64 {
		if s.Overloaded() {
			return 1
		}
		return 0
	}, "max")

	// 1. Traffic and capacity.
	y0 := c.top
	rps := c.series(func(s Sample) float64 { return s.RPS }, "mean")
	capa := c.series(func(s Sample) float64 { return float64(s.Ready) * r.Model.Capacity }, "mean")
	top := niceMax(max(maxOf(rps), maxOf(capa)) * 1.02)
	c.panel(y0, "Traffic", "req/s", top, over)
	c.area(y0, rps, top, colTraffic)
	c.line(y0, capa, top, colCapacity, 1.6, "")
	c.legend(y0, []legendItem{{"arriving req/s", colTraffic, "area"}, {"capacity of ready instances", colCapacity, ""}, {"overloaded", colOver, "band"}})

	// 2. Instances.
	y1 := y0 + c.panelH + c.gap
	inst := c.series(func(s Sample) float64 { return float64(s.Instances) }, "max")
	ready := c.series(func(s Sample) float64 { return float64(s.Ready) }, "mean")
	top = niceMax(math.Max(maxOf(inst), float64(r.Settings.Min)) * 1.08)
	c.panel(y1, "Instances", "instances", top, nil)
	c.line(y1, inst, top, colTraffic, 2, "")
	c.line(y1, ready, top, colReady, 1.6, "5 3")
	c.markers(y1, top)
	c.legend(y1, []legendItem{{"running", colTraffic, ""}, {"ready", colReady, "dash"}, {"scale-up", colUp, "up"}, {"scale-down", colDown, "down"}})

	// 3. CPU.
	y2 := y1 + c.panelH + c.gap
	cpu := c.series(func(s Sample) float64 { return s.CPU }, "mean")
	c.panel(y2, "CPU per ready instance", "%", 100, over)
	if c.hasCPUTarget {
		yt := y2 + c.panelH - c.cpuTarget/100*c.panelH
		fmt.Fprintf(&c.b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1.2" stroke-dasharray="6 4"/>`+"\n", c.left, c.left+c.plotW, yt, yt, colCapacity)
	}
	c.line(y2, cpu, 100, colCPU, 1.6, "")
	items := []legendItem{{"CPU", colCPU, ""}}
	if c.hasCPUTarget {
		items = append(items, legendItem{fmt.Sprintf("target %g%%", c.cpuTarget), colCapacity, "dash"})
	}
	c.legend(y2, items)

	// 4. Latency.
	y3 := y2 + c.panelH + c.gap
	p95s := c.series(func(s Sample) float64 { return s.P95 }, "max")
	c.logPanel(y3, "p95 latency (M/M/c), log scale", "ms", p95s, over)
	c.legend(y3, []legendItem{{"p95, worst in each pixel", colP95, ""}})

	c.timeAxis(y3 + c.panelH)
	c.b.WriteString("</svg>\n")
	return c.b.String()
}

// panel draws a panel's frame, title, y axis with nice ticks, grid and overload bands.
func (c *chart) panel(y float64, title, unit string, top float64, over []float64) {
	fmt.Fprintf(&c.b, `<text x="%.0f" y="%.1f" font-size="15" font-weight="600" fill="#1d1d1f">%s <tspan font-weight="400" fill="#555" font-size="13">(%s)</tspan></text>`+"\n", c.left, y-10, escape(title), escape(unit))
	for i, v := range over {
		if v > 0 {
			x := c.left + float64(i)/float64(c.buckets)*c.plotW
			fmt.Fprintf(&c.b, `<rect x="%.1f" y="%.1f" width="%.2f" height="%.1f" fill="%s" opacity="0.13"/>`, x, y, math.Max(c.plotW/float64(c.buckets), 1), c.panelH, colOver)
		}
	}
	for _, t := range ticks(top) {
		yy := y + c.panelH - t/top*c.panelH
		fmt.Fprintf(&c.b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e6e6e6"/>`, c.left, c.left+c.plotW, yy, yy)
		fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" font-size="13" fill="#333" text-anchor="end">%s</text>`+"\n", c.left-8, yy+4.5, si(t))
	}
	fmt.Fprintf(&c.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`+"\n", c.left, y, c.plotW, c.panelH)
	// Vertical grid at the time ticks.
	for _, t := range timeTicks(c.duration) {
		x := c.x(float64(t))
		fmt.Fprintf(&c.b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#f0f0f0"/>`, x, x, y, y+c.panelH)
	}
}

// logPanel draws a panel with a logarithmic y axis over the decades the values span, and the
// values' line: latency spans milliseconds to seconds when the fleet is overloaded.
func (c *chart) logPanel(y float64, title, unit string, vals, over []float64) {
	lo, hi := math.Inf(1), 0.0
	for _, v := range vals {
		if v > 0 && !math.IsInf(v, 0) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if hi == 0 {
		lo, hi = 1, 10
	}
	d0, d1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi*1.05))
	if d1 <= d0 {
		d1 = d0 + 1
	}
	fy := func(v float64) float64 {
		if v <= 0 {
			return y + c.panelH
		}
		f := (math.Log10(v) - d0) / (d1 - d0)
		return y + c.panelH - math.Min(math.Max(f, 0), 1)*c.panelH
	}
	c.panel(y, title, unit, 0, over)
	for d := d0; d <= d1; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if math.Log10(v) > d1+1e-9 {
				break
			}
			yy := fy(v)
			fmt.Fprintf(&c.b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e6e6e6"/>`, c.left, c.left+c.plotW, yy, yy)
			fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" font-size="13" fill="#333" text-anchor="end">%s</text>`+"\n", c.left-8, yy+4.5, si(v))
		}
	}
	var p strings.Builder
	for i, v := range vals {
		x := c.left + (float64(i)+0.5)/float64(len(vals))*c.plotW
		fmt.Fprintf(&p, "%.1f,%.1f ", x, fy(v))
	}
	fmt.Fprintf(&c.b, `<polyline fill="none" stroke="%s" stroke-width="1.6" stroke-linejoin="round" points="%s"/>`+"\n", colP95, p.String())
}

func (c *chart) points(y float64, vals []float64, top float64) string {
	var p strings.Builder
	for i, v := range vals {
		x := c.left + (float64(i)+0.5)/float64(len(vals))*c.plotW
		yy := y + c.panelH - math.Min(v, top)/top*c.panelH
		fmt.Fprintf(&p, "%.1f,%.1f ", x, yy)
	}
	return p.String()
}

func (c *chart) line(y float64, vals []float64, top float64, color string, width float64, dash string) {
	d := ""
	if dash != "" {
		d = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	fmt.Fprintf(&c.b, `<polyline fill="none" stroke="%s" stroke-width="%.1f" stroke-linejoin="round"%s points="%s"/>`+"\n", color, width, d, c.points(y, vals, top))
}

func (c *chart) area(y float64, vals []float64, top float64, color string) {
	base := y + c.panelH
	fmt.Fprintf(&c.b, `<polygon fill="%s" fill-opacity="0.28" stroke="%s" stroke-width="1.2" points="%.1f,%.1f %s%.1f,%.1f"/>`+"\n",
		color, color, c.left, base, c.points(y, vals, top), c.left+c.plotW, base)
}

// markers draws a triangle at each scale, on the instance line, and a tick under the panel.
func (c *chart) markers(y, top float64) {
	inst := func(t int) float64 {
		t = min(max(t, 0), c.duration-1)
		return float64(c.r.Samples[t].Instances)
	}
	for _, t := range c.eventsUp {
		x := c.x(float64(t))
		yy := y + c.panelH - inst(t)/top*c.panelH
		fmt.Fprintf(&c.b, `<path d="M%.1f %.1f l-4.5 8 h9 z" fill="%s"/>`, x, yy-10, colUp)
	}
	for _, t := range c.down {
		x := c.x(float64(t))
		yy := y + c.panelH - inst(t)/top*c.panelH
		fmt.Fprintf(&c.b, `<path d="M%.1f %.1f l-4.5 -8 h9 z" fill="%s"/>`, x, yy+10, colDown)
	}
	c.b.WriteString("\n")
}

type legendItem struct{ label, color, kind string }

// legend writes the items right-aligned above the panel.
func (c *chart) legend(y float64, items []legendItem) {
	x := c.left + c.plotW
	for i := len(items) - 1; i >= 0; i-- {
		it := items[i]
		w := 7.2*float64(len([]rune(it.label))) + 30
		x -= w
		ly := y - 14
		switch it.kind {
		case "area", "band":
			op := "0.35"
			if it.kind == "band" {
				op = "0.18"
			}
			fmt.Fprintf(&c.b, `<rect x="%.1f" y="%.1f" width="16" height="10" fill="%s" fill-opacity="%s" stroke="%s"/>`, x, ly-5, it.color, op, it.color)
		case "up":
			fmt.Fprintf(&c.b, `<path d="M%.1f %.1f l-5 9 h10 z" fill="%s"/>`, x+8, ly-5, it.color)
		case "down":
			fmt.Fprintf(&c.b, `<path d="M%.1f %.1f l-5 -9 h10 z" fill="%s"/>`, x+8, ly+4, it.color)
		case "dash":
			fmt.Fprintf(&c.b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="5 3"/>`, x, x+16, ly, ly, it.color)
		default:
			fmt.Fprintf(&c.b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"/>`, x, x+16, ly, ly, it.color)
		}
		fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" font-size="13" fill="#333">%s</text>`+"\n", x+21, ly+4.5, escape(it.label))
	}
}

// timeAxis labels elapsed time under the last panel.
func (c *chart) timeAxis(y float64) {
	for _, t := range timeTicks(c.duration) {
		x := c.x(float64(t))
		fmt.Fprintf(&c.b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#999"/>`, x, x, y, y+5)
		fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" font-size="13" fill="#333" text-anchor="middle">%s</text>`+"\n", x, y+21, clock(t))
	}
	fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" font-size="13" fill="#555" text-anchor="middle">time from the start of the trace (hh:mm)</text>`+"\n", c.left+c.plotW/2, y+42)
}

// timeTicks returns round tick times for a duration in seconds: about 6-12 of them.
func timeTicks(d int) []int {
	var step int
	for _, s := range []int{10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 43200, 86400} {
		step = s
		if d/s <= 12 {
			break
		}
	}
	var out []int
	for t := 0; t <= d; t += step {
		out = append(out, t)
	}
	return out
}

// niceStep is the round step (1, 2, 2.5 or 5 times a power of ten) that splits v into at most
// five parts.
func niceStep(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v/5)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v/(m*p) <= 5 {
			return m * p
		}
	}
	return 10 * p
}

// niceMax rounds v up to a whole number of its niceStep.
func niceMax(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	st := niceStep(v)
	return math.Ceil(v/st-1e-9) * st
}

// ticks returns the round values from 0 to top (from niceMax).
func ticks(top float64) []float64 {
	if !(top > 0) || math.IsInf(top, 0) {
		return nil
	}
	st := niceStep(top)
	var out []float64
	for v := 0.0; v <= top*1.0001; v += st {
		out = append(out, v)
	}
	return out
}

func maxOf(vs []float64) float64 {
	m := 0.0
	for _, v := range vs {
		if !math.IsInf(v, 0) {
			m = max(m, v)
		}
	}
	return m
}

// si formats a count with k, M or G: 100000 → "100k", 2500 → "2.5k".
func si(v float64) string {
	a := math.Abs(v)
	for _, u := range []struct {
		f float64
		s string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if a >= u.f {
			return trim(v/u.f) + u.s
		}
	}
	return trim(v)
}

func trim(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	if math.Abs(v) >= 100 {
		s = fmt.Sprintf("%.0f", v)
	}
	return strings.TrimSuffix(s, ".0")
}

func ms(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func pct(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return part / whole * 100
}

// clock formats seconds from the start as hh:mm (or mm:ss below ten minutes).
func clock(t int) string {
	return fmt.Sprintf("%02d:%02d", t/3600, t/60%60)
}

func escape(s string) string { return html.EscapeString(s) }
