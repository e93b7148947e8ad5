// Package natsembed runs a NATS server with JetStream inside the shoal process: the
// embedded broker `shoal up` starts when messaging.type is nats and no URL is given, so a
// fleet's instances talk through a real broker with nothing installed.
package natsembed

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is a running embedded server.
type Server struct {
	s   *server.Server
	dir string
}

// Start runs a server on 127.0.0.1 (port 0 picks a free one), keeping JetStream's storage
// in dir.
func Start(dir string, port int) (*Server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded NATS: cannot create its storage directory %s: %w", dir, err)
	}
	if port == 0 {
		port = -1
	}
	s, err := server.NewServer(&server.Options{ServerName: "shoal-embedded", Host: "127.0.0.1", Port: port,
		JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start within 10s (storage %s)", dir)
	}
	return &Server{s: s, dir: dir}, nil
}

// URL is where clients connect.
func (s *Server) URL() string { return s.s.ClientURL() }

// Dir is JetStream's storage directory.
func (s *Server) Dir() string { return s.dir }

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	s.s.Shutdown()
	s.s.WaitForShutdown()
}

// URLFile is where `shoal up` writes the embedded server's URL in the state directory, for
// `shoal messaging` to find.
func URLFile(stateDir string) string { return filepath.Join(stateDir, "nats-url") }
