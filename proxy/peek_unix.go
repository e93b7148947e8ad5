//go:build unix

package proxy

import "syscall"

// canPeek says whether peekSocket works here.
const canPeek = true

// peekSocket looks at the next byte waiting on a socket without taking it and without waiting:
// n > 0 when bytes wait, n == 0 with no error when the peer closed, EAGAIN when nothing waits.
func peekSocket(fd uintptr) (n int, err error) {
	var b [1]byte
	n, _, err = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n, err
}
