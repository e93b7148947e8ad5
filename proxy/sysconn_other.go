//go:build !linux

package proxy

import "net"

// sysConn is Linux-only (sysconn_linux.go); elsewhere connections stay as the net package made
// them, and the raw lane writes each request before it reads the answer.
type sysConn struct{ net.Conn }

func newSysConn(c net.Conn) net.Conn { return c }

func (c *sysConn) sendOnRead([]byte) {}
