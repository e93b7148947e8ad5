package cli

import (
	"context"

	// Database drivers for the database health checks shoal runs under `shoal up`.
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"errors"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/shoal-sh/shoal/admin"
	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/health"
	"github.com/shoal-sh/shoal/telemetry"
)

// fleetHistory keeps the fleet's metric history in memory and in state_dir/metrics.json, so
// `shoal scaling metrics --since 1h` survives a restart of `shoal up`.
type fleetHistory struct {
	h    *telemetry.History
	path string
}

// newHistory returns an empty history kept at stateDir/metrics.json; autosave loads it.
func newHistory(stateDir string) *fleetHistory {
	return &fleetHistory{h: telemetry.NewHistory(nil, nil), path: filepath.Join(stateDir, "metrics.json")}
}

// autosave loads the saved history, then saves it every minute and once more when ctx is done,
// so a crash of shoal itself loses at most a minute of it.
func (f *fleetHistory) autosave(ctx context.Context, log *slog.Logger) {
	err := f.h.Autosave(ctx, f.path, time.Minute, func(err error) {
		log.Warn("metric history: load or save failed", "path", f.path, "err", err)
	})
	if err != nil {
		log.Warn("could not save the metric history", "path", f.path, "err", err)
	}
}

func (f *fleetHistory) Record(metric string, t time.Time, v float64) { f.h.Record(metric, t, v) }

func (f *fleetHistory) Query(metric string, since time.Duration, points int) []admin.Point {
	ps := f.h.Query(metric, since, points)
	out := make([]admin.Point, len(ps))
	for i, p := range ps {
		out[i] = admin.Point(p)
	}
	return out
}

// fleetChecks runs health.checks from shoal itself, so the admin API can report and toggle
// them. Custom checks are Go functions inside the service; shoal lists them but cannot run them.
type fleetChecks struct {
	r      *health.Registry
	custom []config.Check
}

func newChecks(ctx context.Context, c *config.Config, log *slog.Logger) (*fleetChecks, error) {
	var run []config.Check
	fc := &fleetChecks{}
	for _, ch := range c.Health.Checks {
		// Custom checks are Go functions inside the service, and a database check with no
		// DSN is given its *sql.DB in the service's code: both run there, not in shoal.
		if ch.Type == config.CheckCustom || (ch.Type == config.CheckDatabase && ch.URL == "" && c.Database.URL == "") {
			fc.custom = append(fc.custom, ch)
			continue
		}
		run = append(run, ch)
	}
	if !c.Health.Enabled || len(run) == 0 {
		return fc, nil
	}
	cc := *c
	cc.Health.Checks = run
	r, err := health.FromConfig(&cc)
	if err != nil {
		return nil, err
	}
	r.Start()
	go func() {
		<-ctx.Done()
		r.Close()
	}()
	fc.r = r
	return fc, nil
}

func (f *fleetChecks) SetEnabled(name string, enabled bool) error {
	for _, c := range f.custom {
		if c.Name == name {
			return errors.New("check " + name + " runs inside the service (a custom check, or a database check without a URL); shoal cannot switch it")
		}
	}
	if f.r == nil {
		return admin.ErrUnknownCheck
	}
	if err := f.r.SetEnabled(name, enabled); err != nil {
		if errors.Is(err, health.ErrUnknownCheck) {
			return admin.ErrUnknownCheck
		}
		return err
	}
	return nil
}

func (f *fleetChecks) Status() []admin.CheckStatus {
	var out []admin.CheckStatus
	if f.r != nil {
		for _, r := range f.r.Results() {
			out = append(out, admin.CheckStatus{Name: r.Name, Type: r.Type, Critical: r.Critical, Enabled: r.Enabled,
				Switchable: true, Status: string(r.Status), Error: r.Error, Checked: r.Time})
		}
	}
	for _, c := range f.custom {
		out = append(out, admin.CheckStatus{Name: c.Name, Type: c.Type, Critical: c.Critical, Enabled: true,
			Status: "in-service"})
	}
	return out
}
