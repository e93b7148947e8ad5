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
// net/http is lenient where a proxy must not be, because a front end or an instance that reads
// the same bytes differently would frame the stream differently from us:
//   - it accepts a request carrying both Content-Length and Transfer-Encoding: chunked and
//     silently drops the Content-Length (RFC 9112 §6.1 allows that);
//   - it accepts a header with whitespace before the colon ("Content-Length : 42") as a
//     different, unknown header, so the body bytes become the next request (RFC 9112 §5.1
//     requires a 400);
//   - it ignores Transfer-Encoding on an HTTP/1.0 request, whose chunked body then becomes the
//     next request (RFC 9112 §6.1: the framing is faulty and the connection must close).
// A handler cannot see any of these. framingConn watches the raw bytes of an HTTP/1 connection
// as the server reads them, tracks request framing just well enough to find each header block,
// and queues one verdict per request; the handler takes the verdicts in order. The fast serving
// loop has each head in its buffer and asks for the same verdict directly (headVerdict).
// Written by hand because no library exposes the raw header block of a net/http request.

// framingVerdict is what the framing rules say of one request head.
type framingVerdict uint8

const (
	framingOK framingVerdict = iota
	// framingConflict: both Content-Length and Transfer-Encoding.
	framingConflict
	// framingBadName: a header name that is not a token, such as whitespace before the colon.
	framingBadName
	// framingHTTP10TE: Transfer-Encoding on an HTTP/1.0 request.
	framingHTTP10TE
)

// problem returns the error code and message the client gets for a refused head.
func (v framingVerdict) problem() (code, msg string) {
	switch v {
	case framingConflict:
		return "conflicting_framing", "the request has both Content-Length and Transfer-Encoding; a client must send only one of them"
	case framingBadName:
		return "bad_header_name", "a header name is not a token (RFC 9110 §5.1): no whitespace is allowed between a header's name and its colon"
	case framingHTTP10TE:
		return "bad_framing", "an HTTP/1.0 request cannot use Transfer-Encoding (RFC 9112 §6.1); send Content-Length, or speak HTTP/1.1"
	}
	return "", ""
}

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
	verdicts []framingVerdict // per request, in order

	// Parser state, touched only by Read (net/http reads a connection from one goroutine).
	state     framingState
	line      []byte
	remaining int64
	seenLine  bool // the request line of the current message has been seen
	hasCL     bool
	hasTE     bool
	chunked   bool
	badCL     bool
	badName   bool
	http10    bool
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

// next returns the verdict on the next request of the connection.
func (c *framingConn) next() framingVerdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.verdicts) == 0 {
		return framingOK
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
			c.http10 = bytes.HasSuffix(line, []byte(" HTTP/1.0"))
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
	if line[0] == ' ' || line[0] == '\t' {
		return // obs-fold: the previous header's value goes on (net/http joins the lines)
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return
	}
	if !isToken(line[:colon]) {
		c.badName = true
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
	v := framingOK
	switch {
	case c.badName:
		v = framingBadName
	case c.hasTE && c.http10:
		v = framingHTTP10TE
	case c.hasCL && c.hasTE:
		v = framingConflict
	}
	c.mu.Lock()
	c.verdicts = append(c.verdicts, v)
	c.mu.Unlock()
	switch {
	case c.upgrade || v != framingOK || c.badCL:
		// After an upgrade the bytes are no longer HTTP; after a refused head the connection is
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
	c.badName, c.http10 = false, false
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

// requestFraming returns the framing verdict on the request whose context is ctx. It must be
// called exactly once per HTTP/1 request.
func requestFraming(ctx context.Context, protoMajor int) framingVerdict {
	if protoMajor != 1 {
		return framingOK
	}
	fc, _ := ctx.Value(framingKey{}).(*framingConn)
	if fc == nil {
		return framingOK
	}
	return fc.next()
}
