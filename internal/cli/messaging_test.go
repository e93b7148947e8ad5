package cli

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/internal/natsembed"
)

func writeMessagingConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "shoal.yml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMessaging_PublishAndTail publishes with `shoal messaging publish` and reads it back
// with `shoal messaging tail`, through an in-process NATS server named by NATS_URL.
func TestMessaging_PublishAndTail(t *testing.T) {
	s, err := natsembed.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	cfg := writeMessagingConfig(t, "name: clitest\nmessaging:\n  type: nats\n  topic: cli"+strings.ReplaceAll(t.Name()[len(t.Name())-4:], "_", "")+"\n")
	vars := map[string]string{"NATS_URL": s.URL()}
	var wg sync.WaitGroup
	var tailCode int
	var tailOut, tailErr string
	wg.Add(1)
	go func() {
		defer wg.Done()
		tailCode, tailOut, tailErr = run(t, vars, "messaging", "tail", "user.*", "-f", cfg, "-n", "1", "-o", "json")
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// tail may not be subscribed yet; publish until it has printed one message
		code, out, errs := run(t, vars, "messaging", "publish", "user.created", "-f", cfg, "--data", `{"user_id":"123"}`, "--key", "u1")
		if code != ExitOK || !strings.Contains(out, "published") {
			t.Fatalf("publish: code %d out %q err %q", code, out, errs)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(300 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("tail printed nothing")
			}
			continue
		}
		break
	}
	if tailCode != ExitOK || !strings.Contains(tailOut, `"payload":{"user_id":"123"}`) || !strings.Contains(tailOut, `"topic":"user.created"`) || !strings.Contains(tailOut, `"key":"u1"`) {
		t.Fatalf("tail: code %d out %q err %q", tailCode, tailOut, tailErr)
	}
}

func TestMessaging_BadInput(t *testing.T) {
	t.Parallel()
	cfg := writeMessagingConfig(t, "name: clitest\nmessaging:\n  type: nats\n  nats:\n    url: nats://127.0.0.1:1\n")
	mem := writeMessagingConfig(t, "name: clitest\n")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"messaging", "publish", "user.created", "-f", cfg, "--data", "{not json"}, ExitInvalid, "is not JSON"},
		{[]string{"messaging", "publish", "user.*", "-f", cfg, "--data", "{}"}, ExitInvalid, "wildcard"},
		{[]string{"messaging", "publish", "", "-f", cfg, "--data", "{}"}, ExitInvalid, "must not be empty"},
		{[]string{"messaging", "tail", "user.>.x", "-f", cfg}, ExitInvalid, "may only be the last token"},
		{[]string{"messaging", "publish", "user.created", "-f", mem, "--data", "{}"}, ExitInvalid, "messaging.type is memory"},
		{[]string{"messaging", "publish", "user.created", "-f", cfg, "--data", "{}"}, ExitFailure, "cannot connect"},
	}
	for _, c := range cases {
		code, _, errs := run(t, nil, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) || strings.Contains(errs, "goroutine") {
			t.Errorf("%v: code %d, stderr %q; want code %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
}

// TestEmbeddedNATS: with messaging.type nats and no URL, `shoal up` starts the embedded
// server and hands its URL to the instances; with a URL it starts nothing.
func TestEmbeddedNATS(t *testing.T) {
	t.Parallel()
	load := func(body string, vars map[string]string) *config.Config {
		path := writeMessagingConfig(t, body)
		c, err := config.Load(path, config.Options{LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := &app{stderr: &strings.Builder{}}
	for _, c := range []*config.Config{
		load("name: x\nmessaging:\n  type: nats\n  nats:\n    url: nats://example:4222\n", nil),
		load("name: x\nmessaging:\n  type: nats\n", map[string]string{"NATS_URL": "nats://example:4222"}),
		load("name: x\n", nil),
	} {
		env, stop, err := a.embeddedNATS(c, t.TempDir())
		if err != nil || env != nil {
			t.Errorf("type %s url %s: env %v err %v; want nothing started", c.Messaging.Type, c.Messaging.NATS.URL, env, err)
		}
		stop()
	}
	state := t.TempDir()
	env, stop, err := a.embeddedNATS(load("name: x\nmessaging:\n  type: nats\n", nil), state)
	if err != nil {
		t.Fatal(err)
	}
	if len(env) != 1 || !strings.HasPrefix(env[0], "NATS_URL=nats://127.0.0.1:") {
		t.Fatalf("env %v", env)
	}
	if b, err := os.ReadFile(natsembed.URLFile(state)); err != nil || strings.TrimSpace(string(b)) != strings.TrimPrefix(env[0], "NATS_URL=") {
		t.Fatalf("url file: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(state, "nats", "jetstream")); err != nil {
		t.Errorf("JetStream storage is not in the state directory: %v", err)
	}
	stop()
	if _, err := os.Stat(natsembed.URLFile(state)); !os.IsNotExist(err) {
		t.Errorf("the URL file outlived the server: %v", err)
	}
}
