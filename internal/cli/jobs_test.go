package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/shoal-sh/shoal/database/databasetest"
)

func TestJobs_EnqueueListInspectCancelRetry(t *testing.T) {
	t.Parallel()
	for _, b := range []databasetest.Backend{databasetest.Backends[0], databasetest.Backends[2]} {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			url := b.NewURL(t)
			driver := "sqlite"
			if b.Name == "postgres" {
				driver = "postgres"
			}
			cfgPath := writeDBConfig(t, "name: shop\napp:\n  command: ./shop\njobs:\n  enabled: true\n  driver: "+driver+"\n  url: \"${JOBS_URL}\"\n  queues:\n    default: 1\n    mail: 5\n")
			vars := map[string]string{"JOBS_URL": url}

			code, out, errs := run(t, vars, "jobs", "enqueue", "email", "--args", `{"to":"a@b.c"}`, "--queue", "mail", "--delay", "1h", "-f", cfgPath)
			if code != ExitOK || !strings.HasPrefix(out, "enqueued job 1 (email)") {
				t.Fatalf("enqueue: %d %q %q", code, out, errs)
			}
			code, out, errs = run(t, vars, "jobs", "list", "-f", cfgPath)
			if code != ExitOK || !strings.Contains(out, "STATE") || !strings.Contains(out, "email") || !strings.Contains(out, "available") {
				t.Fatalf("list: %d %q %q", code, out, errs)
			}
			code, out, _ = run(t, vars, "jobs", "list", "--state", "completed", "-o", "json", "-f", cfgPath)
			if code != ExitOK || out != "" {
				t.Fatalf("list completed: %d %q", code, out)
			}
			code, out, errs = run(t, vars, "jobs", "inspect", "1", "-o", "json", "-f", cfgPath)
			var j struct {
				Kind, Queue, State string
				Args               json.RawMessage
			}
			if code != ExitOK || json.Unmarshal([]byte(out), &j) != nil || j.Kind != "email" || j.Queue != "mail" || string(j.Args) != `{"to":"a@b.c"}` {
				t.Fatalf("inspect: %d %q %q", code, out, errs)
			}
			code, out, errs = run(t, vars, "jobs", "cancel", "1", "-f", cfgPath)
			if code != ExitOK || !strings.Contains(out, "now cancelled") {
				t.Fatalf("cancel: %d %q %q", code, out, errs)
			}
			code, _, errs = run(t, vars, "jobs", "cancel", "1", "-f", cfgPath)
			if code == ExitOK || !strings.Contains(errs, "cancelled") {
				t.Fatalf("cancel twice: %d %q", code, errs)
			}
			code, out, errs = run(t, vars, "jobs", "retry", "1", "-f", cfgPath)
			if code != ExitOK || !strings.Contains(out, "now available") {
				t.Fatalf("retry: %d %q %q", code, out, errs)
			}
			code, out, errs = run(t, vars, "jobs", "stats", "-f", cfgPath)
			if code != ExitOK || !strings.Contains(out, "mail") || !strings.Contains(out, "available") {
				t.Fatalf("stats: %d %q %q", code, out, errs)
			}
			// Bad input: a clear error each time.
			for _, c := range []struct {
				args []string
				want string
			}{
				{[]string{"inspect", "x"}, "not a job ID"},
				{[]string{"inspect", "99"}, "no such job"},
				{[]string{"list", "--state", "weird"}, "unknown state"},
				{[]string{"list", "-o", "yaml"}, "not a format"},
				{[]string{"enqueue", "email", "--args", "{"}, "not JSON"},
				{[]string{"enqueue", "email", "--queue", "nope"}, "jobs.queues has default, mail"},
				{[]string{"retry"}, "needs a job ID"},
			} {
				code, _, errs := run(t, vars, append(append([]string{"jobs"}, c.args...), "-f", cfgPath)...)
				if code == ExitOK || !strings.Contains(errs, c.want) {
					t.Errorf("jobs %v: %d %q, want an error with %q", c.args, code, errs, c.want)
				}
			}
		})
	}
}
