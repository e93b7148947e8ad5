package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"

	"github.com/shoal-sh/shoal/cqrs"
	"github.com/shoal-sh/shoal/database/databasetest"
	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/eventstore/sqlstore"
)

func TestEvents(t *testing.T) {
	t.Parallel()
	url := databasetest.SQLiteURL(t)
	cfgPath := writeDBConfig(t, "name: shop\napp:\n  command: ./shop\ndatabase:\n  url: \"${DATABASE_URL}\"\n")
	vars := map[string]string{"DATABASE_URL": url}

	// Before the service ran: a clear error.
	if code, _, errs := run(t, vars, "events", "stats", "-f", cfgPath); code == ExitOK || !strings.Contains(errs, "has no event store") {
		t.Fatalf("stats on an empty database: %d %q", code, errs)
	}
	ctx := context.Background()
	db := databasetest.Open(t, databasetest.Config(url))
	s, err := sqlstore.New(ctx, db, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 5 {
		s.Append(ctx, "order-1", eventstore.Any, eventstore.NewEvent("Placed", map[string]int{"n": i}))
		s.Append(ctx, "cart-1", eventstore.Any, eventstore.NewEvent("Added", map[string]int{"n": i}))
	}
	s.SaveCheckpoint(ctx, "mailer", 4)
	_, err = cqrs.NewProjector(ctx, db, s, cqrs.Projection{Name: "orders", Table: "orders",
		Setup: func(ctx context.Context, tx *sql.Tx, table string) error {
			_, err := tx.ExecContext(ctx, "CREATE TABLE "+table+" (id INT)")
			return err
		},
		Apply: func(context.Context, *sql.Tx, string, eventstore.RecordedEvent) error { return nil }}, cqrs.ProjectorOptions{})
	if err != nil {
		t.Fatal(err)
	}

	code, out, errs := run(t, vars, "events", "read", "order-1", "--from", "4", "-f", cfgPath)
	if code != ExitOK || !strings.Contains(out, "POSITION") || strings.Count(out, "order-1") != 2 || !strings.Contains(out, `{"n":4}`) {
		t.Fatalf("read: %d %q %q", code, out, errs)
	}
	code, out, _ = run(t, vars, "events", "read", "order-1", "--backward", "--limit", "1", "-o", "json", "-f", cfgPath)
	var e map[string]any
	if code != ExitOK || json.Unmarshal([]byte(out), &e) != nil || e["version"] != float64(5) || e["type"] != "Placed" {
		t.Fatalf("read -o json: %d %q", code, out)
	}
	if code, _, errs := run(t, vars, "events", "read", "nobody", "-f", cfgPath); code == ExitOK || !strings.Contains(errs, `"nobody" has no events`) {
		t.Errorf("read of a missing stream: %d %q", code, errs)
	}
	code, out, _ = run(t, vars, "events", "tail", "--type", "Added", "--from", "1", "--follow=false", "-o", "json", "-f", cfgPath)
	if code != ExitOK || strings.Count(out, "\n") != 5 || strings.Contains(out, "Placed") {
		t.Fatalf("tail --type: %d %q", code, out)
	}
	code, out, _ = run(t, vars, "events", "stats", "-f", cfgPath)
	if code != ExitOK || !strings.Contains(out, "sqlite event store: 10 events in 2 streams, head 10") || !strings.Contains(out, "mailer") {
		t.Fatalf("stats: %d %q", code, out)
	}
	code, out, _ = run(t, vars, "events", "projections", "-f", cfgPath)
	if code != ExitOK || !strings.Contains(out, "orders") || !strings.Contains(out, "LAG") {
		t.Fatalf("projections: %d %q", code, out)
	}
	code, out, _ = run(t, vars, "events", "rebuild", "orders", "-f", cfgPath)
	if code != ExitOK || !strings.Contains(out, "rebuild of orders asked for") {
		t.Fatalf("rebuild: %d %q", code, out)
	}
	if code, _, errs := run(t, vars, "events", "rebuild", "nope", "-f", cfgPath); code == ExitOK || !strings.Contains(errs, "known: [orders]") {
		t.Errorf("rebuild of an unknown projection: %d %q", code, errs)
	}
	if code, _, errs := run(t, vars, "events", "stats", "-o", "yaml", "-f", cfgPath); code == ExitOK || !strings.Contains(errs, `-o "yaml" is not a format`) {
		t.Errorf("bad -o: %d %q", code, errs)
	}
}
