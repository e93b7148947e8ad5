package proxy

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
)

// Request-smuggling defence.
//
// net/http accepts a request carrying both Content-Length and Transfer-Encoding: chunked and
// silently drops the Content-Length (RFC 9112 §6.1 allows that), so a handler cannot see the
// conflict. A proxy must refuse such requests: a front end that trusted the Content-Length
// would frame the stream differently from us. framingConn watches the raw bytes of an HTTP/1
// connection as the server reads them, tracks request framing just well enough to find each
// header block, and queues one verdict per request; the handler takes the verdicts in order.
// Written by hand because no library exposes the raw header block of a net/http request.

type framingState uint8

const (
	fsHeaders framingState = iota
	fsBody
	fsChunkSize
	fsChunkData
	fsChunkEnd
	fsTrailers
	fsOff // HTTP/2, an upgraded connection, or bytes we cannot follow: stop watching
)

// maxFramingLine bounds one header or chunk-size line; longer input is left to net/http's own
// limits (it answers 431) and watching stops.
const maxFramingLine = 64 << 10

type framingConn struct {
	net.Conn

	mu       sync.Mutex
	verdicts []bool // per request, in order: true when the framing headers conflict

	// Parser state, touched only by Read (net/http reads a connection from one goroutine).
	state     framingState
	line      []byte
	remaining int64
	seenLine  bool // the request line of the current message has been seen
	hasCL     bool
	hasTE     bool
	chunked   bool
	badCL     bool
	upgrade   bool
	clValue   int64
}

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.state != fsOff {
		c.feed(p[:n])
	}
	return n, err
}

// next returns whether the next request on the connection had conflicting framing headers.
func (c *framingConn) next() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.verdicts) == 0 {
		return false
	}
	v := c.verdicts[0]
	c.verdicts = c.verdicts[1:]
	return v
}

func (c *framingConn) feed(b []byte) {
	for len(b) > 0 && c.state != fsOff {
		switch c.state {
		case fsBody, fsChunkData:
			k := int64(len(b))
			if k > c.remaining {
				k = c.remaining
			}
			c.remaining -= k
			b = b[k:]
			if c.remaining == 0 {
				if c.state == fsBody {
					c.state = fsHeaders
				} else {
					c.state = fsChunkEnd
				}
			}
		default:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.line = append(c.line, b...)
				if len(c.line) > maxFramingLine {
					c.state = fsOff
				}
				return
			}
			c.line = append(c.line, b[:i]...)
			b = b[i+1:]
			line := bytes.TrimSuffix(c.line, []byte{'\r'})
			c.onLine(line)
			c.line = c.line[:0]
		}
	}
}

func (c *framingConn) onLine(line []byte) {
	switch c.state {
	case fsHeaders:
		if !c.seenLine {
			if len(line) == 0 {
				return // RFC 9112 §2.2: ignore empty lines before a request line
			}
			if bytes.HasPrefix(line, []byte("PRI * HTTP/2")) {
				c.state = fsOff
				return
			}
			c.seenLine = true
			return
		}
		if len(line) > 0 {
			c.header(line)
			return
		}
		c.endOfHeaders()
	case fsChunkSize:
		if semi := bytes.IndexByte(line, ';'); semi >= 0 {
			line = line[:semi]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		switch {
		case err != nil || size < 0:
			c.state = fsOff
		case size == 0:
			c.state = fsTrailers
		default:
			c.state, c.remaining = fsChunkData, size
		}
	case fsChunkEnd:
		if len(line) != 0 {
			c.state = fsOff
			return
		}
		c.state = fsChunkSize
	case fsTrailers:
		if len(line) == 0 {
			c.state = fsHeaders
		}
	}
}

func (c *framingConn) header(line []byte) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return
	}
	name := bytes.TrimSpace(line[:colon])
	value := bytes.TrimSpace(line[colon+1:])
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		v, err := strconv.ParseInt(string(value), 10, 64)
		if err != nil || v < 0 || (c.hasCL && v != c.clValue) {
			c.badCL = true
		}
		c.hasCL, c.clValue = true, v
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		c.hasTE = true
		codings := bytes.Split(value, []byte{','})
		c.chunked = bytes.EqualFold(bytes.TrimSpace(codings[len(codings)-1]), []byte("chunked"))
	case bytes.EqualFold(name, []byte("Upgrade")):
		c.upgrade = true
	}
}

func (c *framingConn) endOfHeaders() {
	conflict := c.hasCL && c.hasTE
	c.mu.Lock()
	c.verdicts = append(c.verdicts, conflict)
	c.mu.Unlock()
	switch {
	case c.upgrade || conflict || c.badCL:
		// After an upgrade the bytes are no longer HTTP; after a conflict the connection is
		// closed; a broken Content-Length is refused by net/http. Nothing more to follow.
		c.state = fsOff
	case c.hasTE && c.chunked:
		c.state = fsChunkSize
	case c.hasTE:
		c.state = fsOff // net/http refuses unknown codings
	case c.hasCL && c.clValue > 0:
		c.state, c.remaining = fsBody, c.clValue
	default:
		c.state = fsHeaders
	}
	c.seenLine, c.hasCL, c.hasTE, c.chunked, c.badCL, c.upgrade, c.clValue = false, false, false, false, false, false, 0
}

// framingListener wraps accepted connections in framingConn.
type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c}, nil
}

type framingKey struct{}

// connContext puts the framingConn of a connection into its requests' context.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, framingKey{}, fc)
	}
	return ctx
}

// conflictingFraming reports whether the request carried both Content-Length and
// Transfer-Encoding. It must be called exactly once per HTTP/1 request.
func conflictingFraming(ctx context.Context, protoMajor int) bool {
	if protoMajor != 1 {
		return false
	}
	fc, _ := ctx.Value(framingKey{}).(*framingConn)
	return fc != nil && fc.next()
}
