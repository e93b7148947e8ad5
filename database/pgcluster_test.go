package database_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/shoal-sh/shoal/internal/servicetest"
)

// pgCluster is a PostgreSQL primary and a streaming replica owned by the test: initdb and
// pg_basebackup from the machine's PostgreSQL binaries, on free ports, in a temporary directory.
// PostgreSQL refuses to run as root, so as root every command runs as the postgres user.
type pgCluster struct {
	t           testing.TB
	bin, dir    string
	asUser      []string // runuser prefix, or nil
	primaryPort int
	replicaPort int
}

func (c *pgCluster) primaryURL(params string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable%s", c.primaryPort, params)
}

func (c *pgCluster) replicaURL(params string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable%s", c.replicaPort, params)
}

// needPGBinaries returns the newest /usr/lib/postgresql/*/bin, or skips (fails when services
// are required).
func needPGBinaries(t testing.TB) string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_basebackup")); err == nil {
			return d
		}
	}
	if servicetest.Required() {
		t.Fatal("no PostgreSQL binaries under /usr/lib/postgresql/*/bin; install postgresql (apt-get install postgresql)")
	}
	t.Skip("no PostgreSQL binaries under /usr/lib/postgresql/*/bin to start a test-owned primary and replica; install postgresql")
	return ""
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startPGCluster(t testing.TB) *pgCluster {
	t.Helper()
	c := &pgCluster{t: t, bin: needPGBinaries(t)}
	dir, err := os.MkdirTemp("", "shoal-pgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs an unprivileged user and there is no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	c.primaryPort, c.replicaPort = freePort(t), freePort(t)
	primary, replica := filepath.Join(dir, "primary"), filepath.Join(dir, "replica")

	c.run("initdb", "-D", primary, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	conf := fmt.Sprintf(`
port = %d
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
wal_level = replica
max_wal_senders = 4
hot_standby = on
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 40
`, c.primaryPort, dir)
	c.appendFile(filepath.Join(primary, "postgresql.conf"), conf)
	c.appendFile(filepath.Join(primary, "pg_hba.conf"), "\nhost replication all 127.0.0.1/32 trust\n")
	c.pgctl(primary, "start")
	t.Cleanup(func() { c.pgctlQuiet(primary, "stop", "-m", "immediate") })

	c.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(c.primaryPort), "-U", "postgres", "-D", replica, "-R", "-X", "stream", "--no-sync")
	c.appendFile(filepath.Join(replica, "postgresql.conf"), fmt.Sprintf("\nport = %d\n", c.replicaPort))
	c.startReplica()
	t.Cleanup(func() { c.pgctlQuiet(replica, "stop", "-m", "immediate") })
	c.waitReady(c.replicaURL(""))
	return c
}

func (c *pgCluster) startReplica() { c.pgctl(filepath.Join(c.dir, "replica"), "start") }
func (c *pgCluster) stopReplica()  { c.pgctl(filepath.Join(c.dir, "replica"), "stop", "-m", "fast") }

func (c *pgCluster) cmd(name string, args ...string) *exec.Cmd {
	full := append(append([]string{}, c.asUser...), filepath.Join(c.bin, name))
	full = append(full, args...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Dir = c.dir
	return cmd
}

func (c *pgCluster) run(name string, args ...string) {
	c.t.Helper()
	out, err := c.cmd(name, args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func (c *pgCluster) pgctl(data, action string, args ...string) {
	c.t.Helper()
	a := append([]string{"-D", data, "-l", data + ".log", "-w", "-t", "60", action}, args...)
	if out, err := c.cmd("pg_ctl", a...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(data + ".log")
		c.t.Fatalf("pg_ctl %s: %v\n%s\n%s", action, err, out, log)
	}
}

func (c *pgCluster) pgctlQuiet(data, action string, args ...string) {
	a := append([]string{"-D", data, "-w", "-t", "60", action}, args...)
	_ = c.cmd("pg_ctl", a...).Run()
}

func (c *pgCluster) appendFile(path, text string) {
	c.t.Helper()
	// The file belongs to the postgres user; root may still append to it.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		c.t.Fatal(err)
	}
}

func (c *pgCluster) waitReady(url string) {
	c.t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s is not ready after 60s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exec runs one statement on a server directly.
func (c *pgCluster) exec(url, stmt string) {
	c.t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		c.t.Fatalf("%s: %v", stmt, err)
	}
}
