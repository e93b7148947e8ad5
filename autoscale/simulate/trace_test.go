package simulate

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseCSV(t *testing.T) {
	t.Parallel()
	t.Run("seconds, a header, comments, interpolation", func(t *testing.T) {
		tr, err := ParseCSV(strings.NewReader("# a test\ntimestamp,rps\n0,100\n10,200\n\n20,200\n"), "load.csv")
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.RPS) != 20 || tr.RPS[0] != 100 || tr.RPS[5] != 150 || tr.RPS[15] != 200 {
			t.Errorf("RPS = %v", tr.RPS)
		}
	})
	t.Run("RFC 3339 times and durations", func(t *testing.T) {
		tr, err := ParseCSV(strings.NewReader("2026-12-01T09:00:00Z,10\n2026-12-01T09:01:00Z,70\n"), "t.csv")
		if err != nil {
			t.Fatal(err)
		}
		if tr.Duration() != time.Minute || tr.RPS[30] != 40 {
			t.Errorf("duration %s, RPS[30] %g", tr.Duration(), tr.RPS[30])
		}
		tr, err = ParseCSV(strings.NewReader("0s,5\n1m30s,5\n"), "d.csv")
		if err != nil || tr.Duration() != 90*time.Second {
			t.Errorf("durations: %v, %s", err, tr.Duration())
		}
	})
	t.Run("bad rows are named by line, all of them", func(t *testing.T) {
		src := "timestamp,rps\n0,100\n5,abc\n10\nlater,3\n20,-4\n0,10\n30,1e12\n"
		_, err := ParseCSV(strings.NewReader(src), "load.csv")
		if err == nil {
			t.Fatal("no error")
		}
		for _, want := range []string{
			`load.csv:3: "abc" is not a number of requests per second`,
			`load.csv:4: want two columns`,
			`load.csv:5: "later" is not a timestamp`,
			`load.csv:6: -4 requests per second is out of range`,
			`load.csv:7: timestamp 0 is not after the row before`,
			`load.csv:8: 1e12 requests per second is out of range`,
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
		var le *LineError
		if !errors.As(err, &le) || le.Line != 3 {
			t.Errorf("the first LineError is line 3: %+v", le)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if _, err := ParseCSV(strings.NewReader("timestamp,rps\n# nothing\n"), "e.csv"); !errors.Is(err, ErrEmptyTrace) {
			t.Errorf("err = %v, want ErrEmptyTrace", err)
		}
	})
	t.Run("too long", func(t *testing.T) {
		if _, err := ParseCSV(strings.NewReader("0,1\n8d,1\n"), "long.csv"); err == nil || !strings.Contains(err.Error(), "long.csv:2:") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestPattern(t *testing.T) {
	t.Parallel()
	d, err := Pattern("diurnal", 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Duration() != 24*time.Hour || d.Peak() < 1000 || d.Peak() > 1030 {
		t.Errorf("diurnal: %s, peak %g", d.Duration(), d.Peak())
	}
	if low := d.RPS[4*3600]; low < 90 || low > 110 {
		t.Errorf("diurnal at 04:00: %g, want about 10%% of the peak", low)
	}
	for _, name := range []string{"spike", "ramp"} {
		p, err := Pattern(name, 500, 30*time.Minute)
		if err != nil || p.Duration() != 30*time.Minute || p.Peak() != 500 {
			t.Errorf("%s: %v, %s, peak %g", name, err, p.Duration(), p.Peak())
		}
	}
	if _, err := Pattern("sawtooth", 5, 0); err == nil || !strings.Contains(err.Error(), "diurnal, spike, ramp") {
		t.Errorf("unknown pattern: %v", err)
	}
	if _, err := Pattern("ramp", 0, 0); err == nil {
		t.Error("a peak of 0 is refused")
	}
}

func FuzzParseCSV(f *testing.F) {
	f.Add("timestamp,rps\n0,100\n10,200\n")
	f.Add("2026-12-01T09:00:00Z,10\n2026-12-01T09:01:00Z,70\n")
	f.Add("0s,5\n1m30s,5\n# c\n")
	f.Add("0,1\n7d,1\n")
	f.Fuzz(func(t *testing.T, src string) {
		tr, err := ParseCSV(strings.NewReader(src), "fuzz.csv")
		if err != nil {
			return
		}
		if len(tr.RPS) == 0 || tr.Duration() > MaxDuration {
			t.Fatalf("accepted a trace of %d seconds", len(tr.RPS))
		}
		for _, r := range tr.RPS {
			if !(r >= 0 && r <= MaxRPS) {
				t.Fatalf("accepted a rate of %g", r)
			}
		}
	})
}
