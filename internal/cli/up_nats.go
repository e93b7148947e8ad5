package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/internal/natsembed"
)

// natsURLGiven reports whether the configuration names a NATS server: messaging.nats.url
// written in the file or set by NATS_URL, not only its default.
func natsURLGiven(c *config.Config) bool {
	return c.Meta.Position("messaging.nats.url") != c.Meta.Position("messaging.nats")
}

// embeddedNATS starts the embedded NATS server (JetStream, storage in the state directory)
// when messaging.type is nats and no URL is given, and returns the environment every
// instance gets (NATS_URL) and how to stop it. Otherwise it does nothing.
func (a *app) embeddedNATS(c *config.Config, stateDir string) (env []string, stop func(), err error) {
	if c.Messaging.Type != config.MessagingNATS || natsURLGiven(c) {
		return nil, func() {}, nil
	}
	s, err := natsembed.Start(filepath.Join(stateDir, "nats"), 0)
	if err != nil {
		return nil, nil, err
	}
	urlFile := natsembed.URLFile(stateDir)
	if err := os.WriteFile(urlFile, []byte(s.URL()+"\n"), 0o600); err != nil {
		s.Stop()
		return nil, nil, fmt.Errorf("cannot write %s: %w", urlFile, err)
	}
	fmt.Fprintf(a.stderr, "shoal: embedded NATS with JetStream on %s (storage %s); every instance gets NATS_URL\n", s.URL(), s.Dir())
	return []string{"NATS_URL=" + s.URL()}, func() {
		s.Stop()
		os.Remove(urlFile)
	}, nil
}
