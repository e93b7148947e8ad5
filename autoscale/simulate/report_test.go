package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"
)

func spikeResult(t *testing.T) *Result {
	t.Helper()
	tr, err := Pattern("spike", 20_000, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), tr, production(), Model{Capacity: 500, Startup: 30 * time.Second, Initial: 12})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResult_WriteSVG(t *testing.T) {
	t.Parallel()
	r := spikeResult(t)
	var b bytes.Buffer
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML all through.
	dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed: %v", err)
		}
	}
	svg := b.String()
	for _, want := range []string{"Traffic", "Instances", "CPU per ready instance", "p95 latency", "scale-up", "time from the start", "01:00"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the chart lacks %q", want)
		}
	}
	// One triangle per scale event.
	if n, want := strings.Count(svg, `<path d="M`), len(r.Events)+2; n != want {
		t.Errorf("%d markers, want %d (events and the two in the legend)", n, want)
	}
	if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") {
		t.Error("the chart has NaN or Inf coordinates")
	}
}

func TestResult_WriteHTML_SelfContained(t *testing.T) {
	t.Parallel()
	r := spikeResult(t)
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	// Nothing is fetched from elsewhere: no script, stylesheet or image by URL (the SVG
	// namespace is a name, not a fetch).
	if m := regexp.MustCompile(`(?i)(src|href)\s*=|<script|@import|url\(`).FindString(page); m != "" {
		t.Errorf("the page loads something (%q)", m)
	}
	for _, want := range []string{"<svg", "Scale events", "Settings", "instance-hours", "scale up from"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestResult_WriteJSONAndText(t *testing.T) {
	t.Parallel()
	r := spikeResult(t)
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Summary Summary `json:"summary"`
		Events  []Event `json:"events"`
		Series  []struct {
			T         int `json:"t"`
			Instances int `json:"instances"`
		} `json:"series"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Series) != 2*3600/15 || got.Summary.ScaleUps != r.Summary.ScaleUps || len(got.Events) != len(r.Events) {
		t.Errorf("JSON: %d points, summary %+v, %d events", len(got.Series), got.Summary, len(got.Events))
	}
	b.Reset()
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "instance-hours") || !strings.Contains(b.String(), "01:00") {
		t.Errorf("text:\n%s", b.String())
	}
}

func TestNiceAxes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ v, top float64 }{{265, 300}, {102000, 125000}, {7, 8}, {0.3, 0.3}, {100, 100}, {1, 1}} {
		if got := niceMax(c.v); math.Abs(got-c.top) > 1e-9*c.top {
			t.Errorf("niceMax(%g) = %g, want %g", c.v, got, c.top)
		}
	}
	if got := ticks(300); len(got) != 4 || got[3] != 300 {
		t.Errorf("ticks(300) = %v", got)
	}
	if ticks(0) != nil {
		t.Error("ticks(0) should be empty")
	}
}
