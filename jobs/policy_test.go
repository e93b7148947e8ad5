package jobs

import (
	"fmt"
	"testing"
	"time"
)

func TestBackoffBoundsAndCap(t *testing.T) {
	base, max := time.Minute, time.Hour
	for attempt := 1; attempt <= 12; attempt++ {
		want := base * time.Duration(1<<(attempt-1))
		lo, hi := time.Duration(float64(want)*0.75), time.Duration(float64(want)*1.25)
		for _, r := range []float64{0, 0.25, 0.5, 0.999999} {
			d := Backoff(base, max, attempt, r)
			if d > max {
				t.Fatalf("attempt %d r %v: %s above the cap %s", attempt, r, d, max)
			}
			if want*3/4 >= max {
				if d != max {
					t.Fatalf("attempt %d r %v: %s, want the cap", attempt, r, d)
				}
				continue
			}
			if d < lo || (d > hi && d != max) {
				t.Fatalf("attempt %d r %v: %s outside [%s, %s]", attempt, r, d, lo, hi)
			}
		}
	}
	if d := Backoff(base, max, 10_000, 0.5); d != max {
		t.Fatalf("a huge attempt: %s, want the cap", d)
	}
	if d := Backoff(base, max, 0, 0); d != 45*time.Second {
		t.Fatalf("attempt 0 counts as 1: %s", d)
	}
	// Jitter spreads: r=0 and r≈1 differ by half the delay.
	if a, b := Backoff(base, max, 2, 0), Backoff(base, max, 2, 0.999); b-a < 59*time.Second {
		t.Fatalf("jitter range %s..%s", a, b)
	}
}

func TestCronAcrossDST(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	// 02:30 every day: on 29 March 2026 Paris springs from 02:00 to 03:00, so 02:30 does not
	// exist that day; on 25 October 02:00–03:00 happens twice, and the job runs once.
	s, err := ParseCron("CRON_TZ=Europe/Paris 30 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	spring := Ticks(s, time.Date(2026, 3, 27, 12, 0, 0, 0, paris), time.Date(2026, 3, 31, 12, 0, 0, 0, paris), 10)
	var days []int
	for _, tk := range spring {
		days = append(days, tk.In(paris).Day())
		if h, m := tk.In(paris).Hour(), tk.In(paris).Minute(); m != 30 || (h != 2 && h != 3) {
			t.Errorf("tick %s", tk.In(paris))
		}
	}
	if fmt.Sprint(days) != "[28 30 31]" {
		t.Errorf("spring: ticks on days %v, want [28 30 31] (02:30 does not exist on the 29th)", days)
	}
	autumn := Ticks(s, time.Date(2026, 10, 24, 12, 0, 0, 0, paris), time.Date(2026, 10, 26, 12, 0, 0, 0, paris), 10)
	if len(autumn) != 2 {
		t.Fatalf("autumn: %d ticks %v, want one a day (the repeated hour runs once)", len(autumn), autumn)
	}
	// Hourly: 23 ticks on the spring day, 24 on the autumn day (each wall-clock hour once).
	h, _ := ParseCron("CRON_TZ=Europe/Paris 0 * * * *")
	if n := len(Ticks(h, time.Date(2026, 3, 29, 0, 0, 0, 0, paris).Add(-time.Second), time.Date(2026, 3, 29, 23, 59, 0, 0, paris), 100)); n != 23 {
		t.Errorf("hourly on the spring day: %d ticks, want 23", n)
	}
	if n := len(Ticks(h, time.Date(2026, 10, 25, 0, 0, 0, 0, paris).Add(-time.Second), time.Date(2026, 10, 25, 23, 59, 0, 0, paris), 100)); n != 24 {
		t.Errorf("hourly on the autumn day: %d ticks, want 24", n)
	}
	// @every is a fixed interval whatever the zone.
	e, _ := ParseCron("@every 2s")
	if tk := Ticks(e, time.Unix(100, 0), time.Unix(106, 0), 10); len(tk) != 3 {
		t.Errorf("@every 2s over 6s: %v", tk)
	}
	// Two processes started at different times compute the same @every ticks.
	e10, _ := ParseCron("@every 10s")
	a := Ticks(e10, time.Unix(1003, 0), time.Unix(1060, 0), 10)
	b := Ticks(e10, time.Unix(1007, 500), time.Unix(1060, 0), 10)
	if fmt.Sprint(a) != fmt.Sprint(b) || len(a) != 6 || a[0].Unix() != 1010 {
		t.Errorf("@every 10s from two start times: %v and %v", a, b)
	}
	if _, err := ParseCron("61 * * * *"); err == nil {
		t.Error("minute 61 accepted")
	}
}

func TestUniqueKey(t *testing.T) {
	at := time.Date(2026, 1, 1, 10, 15, 0, 0, time.UTC)
	k := func(u UniqueOpts, args string, runAt time.Time) string {
		key, _, err := u.key("email", "default", []byte(args), runAt)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	if k(UniqueOpts{}, `{"a":1}`, at) != k(UniqueOpts{}, `{"a":2}`, at) {
		t.Error("without ByArgs the args changed the key")
	}
	if k(UniqueOpts{ByArgs: true}, `{"a":1}`, at) == k(UniqueOpts{ByArgs: true}, `{"a":2}`, at) {
		t.Error("ByArgs ignored the args")
	}
	p := UniqueOpts{ByPeriod: time.Hour}
	if k(p, "", at) != k(p, "", at.Add(30*time.Minute)) || k(p, "", at) == k(p, "", at.Add(time.Hour)) {
		t.Error("ByPeriod does not bucket by the hour")
	}
	_, states, _ := (&UniqueOpts{}).key("k", "q", nil, at)
	if states != "available,completed,running" {
		t.Errorf("default states %q", states)
	}
}

func FuzzParseCron(f *testing.F) {
	for _, s := range []string{"0 * * * *", "@hourly", "@every 5m", "CRON_TZ=Europe/Paris 30 2 * * *", "*/5 1-3 * jan mon", "", "@every -1s", "TZ=Nope/Zone * * * * *"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseCron(spec)
		if err != nil {
			return
		}
		_ = Ticks(s, time.Unix(0, 0), time.Unix(3600, 0), 5)
	})
}

func FuzzParseState(f *testing.F) {
	for _, s := range []string{"available", "running", "completed", "cancelled", "discarded", "", "Running"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseState(s)
		if err == nil && string(st) != s {
			t.Fatalf("ParseState(%q) = %q", s, st)
		}
	})
}
