// Package etcdtest runs a real etcd server (go.etcd.io/etcd/server/v3's embed
// package, the same release as the client shoal uses) in a child process of
// the test binary, on free loopback ports, so that a test can SIGKILL it,
// stop it and start it again on the same data directory — an etcd outage as
// it happens, not a simulation.
//
// A test package that uses it calls [RunIfChild] first in its TestMain: the
// child is the test binary itself, re-executed with an environment variable
// that makes RunIfChild serve etcd instead of running tests.
package etcdtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// childEnv carries "dir clientPort peerPort" to the child.
const childEnv = "SHOAL_ETCDTEST_CHILD"

// RunIfChild serves etcd and exits when the process was started by
// [Start]; otherwise it returns at once. Call it first in TestMain.
func RunIfChild() {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return
	}
	fields := strings.Fields(spec)
	if len(fields) != 3 {
		fmt.Fprintln(os.Stderr, "etcdtest: bad", childEnv, spec)
		os.Exit(2)
	}
	if err := serve(fields[0], fields[1], fields[2]); err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serve runs etcd until stdin closes (the parent died) or SIGTERM.
func serve(dir, clientPort, peerPort string) error {
	cu, _ := url.Parse("http://127.0.0.1:" + clientPort)
	pu, _ := url.Parse("http://127.0.0.1:" + peerPort)
	cfg := embed.NewConfig()
	cfg.Name = "shoal-test"
	cfg.Dir = dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.LogLevel = "error"
	cfg.UnsafeNoFsync = true // a test's data need not survive a power cut
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		return fmt.Errorf("not ready after 60s")
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	stdin := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString(0)
		close(stdin)
	}()
	select {
	case <-sig:
	case <-stdin:
	case err := <-e.Err():
		return err
	}
	return nil
}

// Server is an etcd server in a child process.
type Server struct {
	t                    testing.TB
	dir                  string
	clientPort, peerPort int
	cmd                  *exec.Cmd
	stdin                interface{ Close() error } // kept: its finalizer would close it, stopping the child
	exited               chan struct{}
}

// Start starts etcd on free ports with a data directory of its own, waits
// until it serves, and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, dir: filepath.Join(t.TempDir(), "etcd"), clientPort: freePort(t), peerPort: freePort(t)}
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

var (
	sharedMu sync.Mutex
	shared   []*Server
)

// StartShared is Start for a server that outlives the test that starts it,
// for the tests of a package to share: TestMain must call [StopAll] after
// m.Run. t is only used to report a failure to start.
func StartShared(t testing.TB) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "shoal-etcd-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, dir: dir, clientPort: freePort(t), peerPort: freePort(t)}
	s.Restart()
	sharedMu.Lock()
	shared = append(shared, s)
	sharedMu.Unlock()
	return s
}

// StopAll kills the servers of StartShared and removes their data.
func StopAll() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for _, s := range shared {
		s.Kill()
		os.RemoveAll(s.dir)
	}
	shared = nil
}

// Endpoint is the client address, host:port.
func (s *Server) Endpoint() string { return "127.0.0.1:" + strconv.Itoa(s.clientPort) }

// Restart starts etcd again on the same ports and data directory after Kill
// or Stop, and waits until it serves.
func (s *Server) Restart() {
	s.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", childEnv, s.dir, s.clientPort, s.peerPort))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	exited := make(chan struct{})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if sc.Text() == "ready" && !ok {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-exited
			s.t.Fatalf("etcd did not start: %v", cmd.ProcessState)
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		s.t.Fatal("etcd not ready within 90s")
	}
	s.cmd, s.stdin, s.exited = cmd, stdin, exited
}

// Kill sends SIGKILL to etcd and waits for it to die.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Stop stops etcd with SIGTERM and waits for it to exit.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

func (s *Server) signal(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Signal(sig)
		<-s.exited
	}
	s.stdin.Close()
	s.cmd = nil
}

// WaitServing waits until etcd accepts connections again, up to ctx.
func (s *Server) WaitServing(ctx context.Context) error {
	for {
		c, err := net.DialTimeout("tcp", s.Endpoint(), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
