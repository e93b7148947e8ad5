package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/database/databasetest"
	"github.com/shoal-sh/shoal/jobs"
	"github.com/shoal-sh/shoal/messaging"
)

func call(t testing.TB, base, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, bytes.NewBufferString(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}

// instances starts n bank instances on one database and one broker, as shoal up runs them:
// each with its outbox relay, its member of the consumer group and its job workers.
func instances(t *testing.T, url string, n int) []string {
	bus, err := messaging.NewMemory(messaging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	var out []string
	for i := range n {
		db := databasetest.Open(t, databasetest.Config(url))
		jc := config.Jobs{Enabled: true, Workers: 2, MaxRetries: 3, RetryDelay: config.Duration(50 * time.Millisecond),
			PollInterval: config.Duration(20 * time.Millisecond)}
		b, err := NewBank(context.Background(), db, bus, jobs.Options{Config: jc, WorkerID: fmt.Sprintf("test-%d", i)}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		relayed := make(chan struct{})
		go func() { defer close(relayed); b.Outbox.Run(ctx) }()
		sub, err := b.Subscribe(ctx, bus)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Jobs.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			b.Jobs.Stop(context.Background())
			sub.Close()
			cancel()
			<-relayed
			b.Close()
		})
		srv := httptest.NewServer(b.Handler(fmt.Sprintf("test-%d", i)))
		t.Cleanup(srv.Close)
		out = append(out, srv.URL)
	}
	return out
}

func TestBank(t *testing.T) {
	for name, newURL := range map[string]func(testing.TB) string{"sqlite": databasetest.SQLiteURL, "postgres": databasetest.PostgresURL} {
		t.Run(name, func(t *testing.T) { testBank(t, newURL(t)) })
	}
}

func testBank(t *testing.T, url string) {
	urls := instances(t, url, 3)
	base := urls[0]
	code, acc := call(t, base, "POST", "/accounts", `{"owner":"ada"}`)
	if code != 201 || acc["balance"] != float64(0) || acc["version"] != float64(1) || acc["id"] == "" {
		t.Fatalf("open: %d %v", code, acc)
	}
	id := acc["id"].(string)
	for _, c := range []struct {
		method, path, body string
		code               int
		errCode            string
	}{
		{"POST", "/accounts", `{"owner":""}`, 400, "bad_request"},
		{"POST", "/accounts", `{"owner":`, 400, "bad_request"},
		{"POST", "/accounts", `{"name":"x"}`, 400, "bad_request"},
		{"POST", "/accounts/" + id + "/deposits", `{"amount":0}`, 400, "bad_request"},
		{"POST", "/accounts/" + id + "/deposits", `{"amount":1.5}`, 400, "bad_request"},
		{"POST", "/accounts/" + id + "/deposits", `{"amount":"5"}`, 400, "bad_request"},
		{"POST", "/accounts/" + id + "/withdrawals", `{"amount":1}`, 409, "insufficient_funds"},
		{"POST", "/accounts/nobody/deposits", `{"amount":1}`, 404, "not_found"},
		{"GET", "/accounts/nobody", "", 404, "not_found"},
		{"GET", "/accounts/" + id + "?at=yesterday", "", 400, "bad_request"},
	} {
		code, v := call(t, base, c.method, c.path, c.body)
		if code != c.code || v["error"] != c.errCode {
			t.Errorf("%s %s %s: %d %v, want %d %s", c.method, c.path, c.body, code, v, c.code, c.errCode)
		}
	}
	code, v := call(t, urls[1], "POST", "/accounts/"+id+"/deposits", `{"amount":500}`)
	if code != 200 || v["balance"] != float64(500) || v["version"] != float64(2) {
		t.Fatalf("deposit: %d %v", code, v)
	}
	time.Sleep(10 * time.Millisecond) // the temporal read below needs a moment between events
	mid := time.Now().UTC()
	time.Sleep(10 * time.Millisecond)
	call(t, urls[2], "POST", "/accounts/"+id+"/withdrawals", `{"amount":200}`)
	code, v = call(t, base, "GET", "/accounts/"+id, "")
	if code != 200 || v["balance"] != float64(300) || v["owner"] != "ada" || v["version"] != float64(3) || v["id"] != id {
		t.Fatalf("get: %d %v", code, v)
	}
	code, v = call(t, base, "GET", "/accounts/"+id+"?at="+mid.Format(time.RFC3339Nano), "")
	if code != 200 || v["balance"] != float64(500) || v["version"] != float64(2) {
		t.Fatalf("temporal read at %s: %d %v", mid, code, v)
	}

	// Concurrent deposits and withdrawals over the three instances on 3 accounts: the
	// balances are the sums of the accepted operations and never went negative.
	var ids []string
	for i := range 3 {
		_, a := call(t, urls[i], "POST", "/accounts", fmt.Sprintf(`{"owner":"o%d"}`, i))
		ids = append(ids, a["id"].(string))
	}
	var mu sync.Mutex
	want := map[string]int64{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 25 {
				acc := ids[r.IntN(len(ids))]
				amount := int64(r.IntN(100) + 1)
				kind, sign := "deposits", int64(1)
				if r.IntN(2) == 0 {
					kind, sign = "withdrawals", -1
				}
				code, v := call(t, urls[r.IntN(len(urls))], "POST", "/accounts/"+acc+"/"+kind, fmt.Sprintf(`{"amount":%d}`, amount))
				switch code {
				case 200:
					if v["balance"].(float64) < 0 {
						t.Errorf("balance went negative: %v", v)
					}
					mu.Lock()
					want[acc] += sign * amount
					mu.Unlock()
				case 409:
					if sign > 0 || v["error"] != "insufficient_funds" {
						t.Errorf("%s: %d %v", kind, code, v)
					}
				default:
					t.Errorf("%s: %d %v", kind, code, v)
				}
			}
		}()
	}
	wg.Wait()
	for _, acc := range ids {
		_, v := call(t, base, "GET", "/accounts/"+acc, "")
		if int64(v["balance"].(float64)) != want[acc] {
			t.Errorf("account %s balance %v, want %d (the sum of accepted operations)", acc, v["balance"], want[acc])
		}
	}
}
