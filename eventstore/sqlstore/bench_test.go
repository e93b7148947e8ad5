package sqlstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/database"
	"github.com/shoal-sh/shoal/database/databasetest"
	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/eventstore/sqlstore"
)

// The anchor of the append benchmarks: a plain INSERT into a table of the events' shape.
func plainTable(b *testing.B, db *database.DB) {
	col := map[database.Dialect][3]string{
		database.Postgres: {"UUID", "JSON", "TIMESTAMPTZ"},
		database.SQLite:   {"TEXT", "BLOB", "INTEGER"},
	}[db.Dialect()]
	q := fmt.Sprintf(`CREATE TABLE plain_events (position BIGINT PRIMARY KEY, id %[1]s NOT NULL UNIQUE, stream TEXT NOT NULL,
		version BIGINT NOT NULL, type TEXT NOT NULL, data %[2]s NOT NULL, metadata %[2]s, created_at %[3]s NOT NULL, UNIQUE (stream, version))`,
		col[0], col[1], col[2])
	if _, err := db.ExecContext(context.Background(), q); err != nil {
		b.Fatal(err)
	}
}

func benchURL(b *testing.B, backend string) string {
	if backend == "postgres" {
		return databasetest.PostgresURL(b)
	}
	return databasetest.SQLiteURL(b)
}

// BenchmarkAppend: one caller appending events of ~60 bytes to 100 streams, single and in
// batches of 10, against the plain INSERT loop (one row, or one 10-row statement). ns/op is
// per event.
func BenchmarkAppend(b *testing.B) {
	data := []byte(`{"amount":1234,"currency":"EUR","note":"benchmark deposit"}`)
	for _, backend := range []string{"postgres", "sqlite"} {
		for _, batch := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s/store/batch%d", backend, batch), func(b *testing.B) {
				s := open(b, benchURL(b, backend), sqlstore.Options{})
				ctx := context.Background()
				evs := make([]eventstore.EventData, batch)
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					for j := range evs {
						evs[j] = eventstore.EventData{ID: eventstore.NewID(), Type: "Deposited", Data: data}
					}
					if _, err := s.Append(ctx, fmt.Sprintf("acc-%d", i%100), eventstore.Any, evs...); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/insert/batch%d", backend, batch), func(b *testing.B) {
				db := databasetest.Open(b, databasetest.Config(benchURL(b, backend)))
				plainTable(b, db)
				ctx := context.Background()
				var row strings.Builder
				for j := range batch {
					if j > 0 {
						row.WriteString(",")
					}
					n := j * 6
					fmt.Fprintf(&row, "($%d, $%d, $%d, $%d, 'Deposited', $%d, NULL, $%d)", n+1, n+2, n+3, n+4, n+5, n+6)
				}
				q := db.Rebind("INSERT INTO plain_events (position, id, stream, version, type, data, metadata, created_at) VALUES " + row.String())
				versions := map[string]int64{}
				pos := int64(0)
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					stream := fmt.Sprintf("acc-%d", i%100)
					args := make([]any, 0, 6*batch)
					for range batch {
						pos++
						versions[stream]++
						var at any = time.Now().UTC()
						if db.Dialect() == database.SQLite {
							at = time.Now().UnixMicro()
						}
						var d any = data
						if db.Dialect() == database.Postgres {
							d = string(data)
						}
						args = append(args, pos, eventstore.NewID(), stream, versions[stream], d, at)
					}
					if _, err := db.SQL().ExecContext(ctx, q, args...); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// filled is a PostgreSQL store with n events (batches of 1000 over 50 streams).
func filled(b *testing.B, n int) *sqlstore.Store {
	s := open(b, databasetest.PostgresURL(b), sqlstore.Options{})
	ctx := context.Background()
	data := []byte(`{"amount":1234,"currency":"EUR","note":"benchmark deposit"}`)
	for i := 0; i < n; i += 1000 {
		evs := make([]eventstore.EventData, min(1000, n-i))
		for j := range evs {
			evs[j] = eventstore.EventData{Type: "Deposited", Data: data}
		}
		if _, err := s.Append(ctx, fmt.Sprintf("acc-%d", (i/1000)%50), eventstore.Any, evs...); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkReadAll reads $all of 100k events on PostgreSQL in pages of 10000; events/s is the
// figure.
func BenchmarkReadAll(b *testing.B) {
	const n = 100_000
	s := filled(b, n)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		next, got := eventstore.Position(1), 0
		for got < n {
			sl, err := s.ReadAll(ctx, eventstore.ReadAllOptions{From: next, Limit: eventstore.MaxReadLimit})
			if err != nil {
				b.Fatal(err)
			}
			got += len(sl.Events)
			next = sl.Next
		}
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkCatchUp delivers 100k stored events to a catch-up subscription's no-op handler on
// PostgreSQL; events/s is the figure.
func BenchmarkCatchUp(b *testing.B) {
	const n = 100_000
	s := filled(b, n)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		var seen atomic.Int64
		done := make(chan struct{})
		sub, err := eventstore.Subscribe(context.Background(), s, "", func(ctx context.Context, e eventstore.RecordedEvent) error {
			if seen.Add(1) == n {
				close(done)
			}
			return nil
		}, eventstore.SubscribeOptions{BatchSize: 5000})
		if err != nil {
			b.Fatal(err)
		}
		<-done
		sub.Close()
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "events/s")
}
