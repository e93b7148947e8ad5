// Package servicetest lets a test use one of the machine's real services (PostgreSQL, MariaDB,
// Redis, RabbitMQ, NATS, Mosquitto). When the service cannot be reached the test is skipped
// with a message saying how to start it — unless SHOAL_TEST_SERVICES=required (CI sets it),
// and then it fails.
package servicetest

import (
	"net"
	"os"
	"testing"
	"time"
)

// Service is a service on this machine that tests may use.
type Service struct {
	Name  string
	Addr  string
	Start string // the command that starts it
}

// The services of the development machine (see ../shared/DESIGN.md).
var (
	Postgres  = Service{"PostgreSQL", "127.0.0.1:5432", "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"}
	MariaDB   = Service{"MariaDB", "127.0.0.1:3306", "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"}
	Redis     = Service{"Redis", "127.0.0.1:6379", `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ""`}
	RabbitMQ  = Service{"RabbitMQ", "127.0.0.1:5672", "rabbitmq-server -detached"}
	NATS      = Service{"NATS", "127.0.0.1:4222", "nats-server -a 127.0.0.1 -p 4222 -js"}
	Mosquitto = Service{"Mosquitto", "127.0.0.1:1883", "mosquitto -d -c /etc/mosquitto/mosquitto.conf"}
)

// All lists every service.
var All = []Service{Postgres, MariaDB, Redis, RabbitMQ, NATS, Mosquitto}

// Required reports whether SHOAL_TEST_SERVICES=required.
func Required() bool { return os.Getenv("SHOAL_TEST_SERVICES") == "required" }

// Need returns the service's address, or skips t (fails it, when services are required) if
// nothing listens there.
func Need(t testing.TB, s Service) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
	if err == nil {
		c.Close()
		return s.Addr
	}
	if Required() {
		t.Fatalf("%s is required (SHOAL_TEST_SERVICES=required) but not reachable at %s: %v; start it with: %s", s.Name, s.Addr, err, s.Start)
	}
	t.Skipf("%s is not reachable at %s (%v); skipping. Start it with: %s — or set SHOAL_TEST_SERVICES=required to make this a failure", s.Name, s.Addr, err, s.Start)
	return ""
}
