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

	// A request that the next Read sends before it waits for the answer (sendOnRead).
	send     []byte
	sent     int
	sendErr  syscall.Errno
	sendFn   func(fd uintptr) bool
	sendDone bool // the first call of sendFn has run
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
	s.sendFn = s.sendThenRead
	return s
}

// sendOnRead makes the next Read send p first and then wait for the socket to become readable
// before it reads, instead of reading at once. For a request whose answer cannot be there yet,
// that saves the read that would fail with EAGAIN, as an event loop does. The caller must call
// Read next, with nothing buffered in front of it.
//
// Only for a connection on which the peer sends nothing unasked (an instance's): the wait starts
// after the poller's readiness is reset, so bytes that were already waiting would not wake it;
// bytes sent in answer to p do. A peer that had closed the connection answers p with a reset,
// which does wake it.
func (c *sysConn) sendOnRead(p []byte) {
	c.send = p
}

func (c *sysConn) sendThenRead(fd uintptr) bool {
	if c.sendDone {
		return c.read(fd)
	}
	c.sendDone = true
	blocked, errno := writeAll(fd, c.send, &c.sent)
	c.sendErr = errno
	// Sent: wait until the answer is readable. Blocked (the socket's buffer is full) or failed:
	// stop here; Read finishes with Write, or reports the failure.
	return blocked || errno != 0
}

// readAfterSend is Read when sendOnRead left a request to send.
func (c *sysConn) readAfterSend(p []byte) (int, error) {
	if len(p) == 0 {
		send := c.send
		c.send = nil
		_, err := c.Write(send)
		return 0, err
	}
	c.rbuf, c.rn, c.rerrno = p, 0, 0
	c.sent, c.sendErr, c.sendDone = 0, 0, false
	err := c.rc.Read(c.sendFn)
	rest, sent, sendErr, n, errno := c.send[c.sent:], c.sendDone, c.sendErr, c.rn, c.rerrno
	c.send, c.rbuf = nil, nil
	switch {
	case sendErr != 0:
		return 0, c.opError("write", sendErr)
	case err != nil && !sent:
		return 0, err // a deadline or a close came first: nothing was sent
	case len(rest) > 0: // sending would have blocked: finish it, then read as usual
		if _, err := c.Write(rest); err != nil {
			return 0, err
		}
		return c.Read(p)
	}
	return c.readResult(n, errno, err)
}

func (c *sysConn) Read(p []byte) (int, error) {
	if c.send != nil {
		return c.readAfterSend(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerrno = p, 0, 0
	err := c.rc.Read(c.readFn) // fails on a deadline or a closed connection, as net.Conn's Read
	n, errno := c.rn, c.rerrno
	c.rbuf = nil
	return c.readResult(n, errno, err)
}

// readResult words a read's outcome as net.Conn's Read does: err from the poller (a deadline,
// a close), errno from the system call, and 0 bytes as the end of the stream.
func (c *sysConn) readResult(n int, errno syscall.Errno, err error) (int, error) {
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
	blocked, errno := writeAll(fd, c.wbuf, &c.wn)
	c.werrno = errno
	return !blocked // blocked: the socket's buffer is full, so wait until it is writable
}

// writeAll writes b[*off:] to fd, moving *off on, until it is all written, the socket's
// buffer is full (blocked), or the call fails (errno).
func writeAll(fd uintptr, b []byte, off *int) (blocked bool, errno syscall.Errno) {
	for *off < len(b) {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[*off])), uintptr(len(b)-*off))
		switch errno {
		case 0:
			*off += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return true, 0
		default:
			return false, errno
		}
	}
	return false, 0
}

// opError words a failed call as net.Conn's methods do.
func (c *sysConn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
