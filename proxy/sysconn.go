package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// sysConn is a TCP connection whose Read and Write make their system calls without telling the
// scheduler (syscall.RawSyscall), and wait for readiness through the runtime's poller as
// net.Conn does (syscall.RawConn).
//
// Written by hand because of what a proxy's system calls cost in Go. Every read and write of a
// net.Conn enters and leaves the scheduler's syscall state, and a write on loopback often runs
// longer than sysmon's 20 µs tick, because the kernel delivers the segment to the reader within
// it. sysmon then takes the P away from the writer and wakes another thread to run it, and the
// writer has to find a P again when it returns. Under bench/proxy.sh that dance kept sysmon
// awake thousands of times a second and switched threads tens of thousands of times a second
// (docs/performance.md). These sockets are non-blocking, so a read or write returns at once:
// keeping the P for its duration is what nginx's worker does with its one thread.
type sysConn struct {
	*net.TCPConn
	rc syscall.RawConn

	// What the closures below work on: Read and Write each hold the descriptor's read or
	// write lock while they run, so each side has its own fields.
	rbuf    []byte
	rn      int
	rerrno  syscall.Errno
	wbuf    []byte
	wn      int
	werrno  syscall.Errno
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
}

// newSysConn wraps c when it is a TCP connection, and returns it unchanged otherwise.
func newSysConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	s := &sysConn{TCPConn: tc, rc: rc}
	s.readFn = s.read
	s.writeFn = s.write
	return s
}

func (c *sysConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerrno = p, 0, 0
	err := c.rc.Read(c.readFn) // fails on a deadline or a closed connection, as net.Conn's Read
	n, errno := c.rn, c.rerrno
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *sysConn) read(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch errno {
		case 0:
			c.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait until the socket is readable, then call again
		default:
			c.rerrno = errno
			return true
		}
	}
}

func (c *sysConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wbuf, c.wn, c.werrno = p, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werrno
	c.wbuf = nil
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, c.opError("write", errno)
	}
	return n, nil
}

func (c *sysConn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.wbuf[c.wn])), uintptr(len(c.wbuf)-c.wn))
		switch errno {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // the socket's buffer is full: wait until it is writable
		default:
			c.werrno = errno
			return true
		}
	}
	return true
}

// opError words a failed call as net.Conn's methods do.
func (c *sysConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
