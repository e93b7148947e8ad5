package proxy

import (
	"bufio"
	"bytes"
)

// A strict, allocation-free reader of HTTP/1.1 message heads, for the raw lane (rawlane.go).
//
// Written by hand because every library parser builds maps and strings per header (net/http's
// textproto), and after the proxy's own loop and upstream client (fastserve.go, h1client.go)
// that was most of the proxy's CPU: a throwaway prototype that forwarded the head bytes as
// they are served 2x the requests per second of the map-based path on bench/proxy.sh
// (docs/performance.md). It accepts only a conservative subset of HTTP/1.1 — origin-form
// targets, token names, visible-ASCII values, CRLF line ends, at most one Content-Length, no
// Transfer-Encoding, no Upgrade or Expect, Connection with close or keep-alive only — and says
// "not simple" for anything else, which the caller then hands to the standard library's
// parser. So this parser never has to reject anything itself, and nothing outside the subset
// is ever forwarded byte for byte.

// maxRawHeaders is how many header lines a head may have to take the raw lane.
const maxRawHeaders = 64

// rawHeader is one header line, as slices of the head's bytes.
type rawHeader struct {
	name, value []byte
	line        []byte // the whole line, CRLF included
	drop        bool   // hop-by-hop, or replaced by the proxy: not forwarded
}

// rawHead is a parsed message head; its slices point into the bytes it was parsed from.
type rawHead struct {
	method, target []byte // requests
	status         int    // responses
	statusLine     []byte // responses: the whole first line, without CRLF
	headers        [maxRawHeaders]rawHeader
	n              int
	dropped        int    // headers marked drop
	block          []byte // the header lines, without the empty line that ends the head
	host           []byte // the Host value (requests)
	contentLength  int64  // -1 when absent
	close          bool   // Connection: close
	hosts          int    // Host lines seen (requests)
	idempotencyKey bool   // an Idempotency-Key header is present
}

// peekHead returns the head of the next message in br — the bytes up to and including the
// first empty line — without consuming them, reading more from the connection as needed. Line
// ends may be CRLF or, as net/http tolerates, a bare LF (the raw parsers then refuse the head).
// It returns nil when the head does not fit in br's buffer or the connection fails; the caller
// tells the two apart by whether the buffer is full.
func peekHead(br *bufio.Reader) []byte {
	head, _ := peekHeadErr(br)
	return head
}

// peekHeadErr is peekHead that also returns the error reading met (nil when the head does not
// fit). Nothing is consumed either way, so after a deadline the head may be waited for again.
func peekHeadErr(br *bufio.Reader) ([]byte, error) {
	searched := 0 // bytes already scanned for the end
	for {
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			end, scanned := headEnd(b, searched)
			if end > 0 {
				return b[:end], nil
			}
			searched = scanned
		}
		n := br.Buffered()
		if n >= br.Size() {
			return nil, nil
		}
		if _, err := br.Peek(n + 1); err != nil {
			return nil, err
		}
	}
}

// headEnd returns the length of the head at the start of b, up to and including its first
// empty line, or 0 when b holds no empty line yet; then scanned is where to resume looking
// once b has grown.
func headEnd(b []byte, from int) (end, scanned int) {
	for from < len(b) {
		i := bytes.IndexByte(b[from:], '\n')
		if i < 0 {
			return 0, len(b)
		}
		j := from + i // a line feed: is the line after it empty?
		if j+1 >= len(b) || (b[j+1] == '\r' && j+2 >= len(b)) {
			return 0, j // cannot tell yet
		}
		if b[j+1] == '\n' {
			return j + 2, 0
		}
		if b[j+1] == '\r' && b[j+2] == '\n' {
			return j + 3, 0
		}
		from = j + 1
	}
	return 0, from
}

// parseRequest parses a request head. It returns false when the head is outside the simple
// subset described above.
func (h *rawHead) parseRequest(b []byte) bool {
	h.reset()
	sp := bytes.IndexByte(b, ' ')
	if sp <= 0 || !isToken(b[:sp]) {
		return false
	}
	h.method = b[:sp]
	rest := b[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 || rest[0] != '/' || !validTarget(rest[:sp]) {
		return false
	}
	h.target = rest[:sp]
	rest = rest[sp+1:]
	if !bytes.HasPrefix(rest, []byte("HTTP/1.1\r\n")) {
		return false
	}
	if !h.parseHeaders(rest[len("HTTP/1.1\r\n"):], true) {
		return false
	}
	return h.hosts == 1
}

// parseResponse parses a response head for the raw lane; false sends it to the standard
// library's parser instead. Informational (1xx) answers are never simple.
func (h *rawHead) parseResponse(b []byte) bool {
	h.reset()
	if len(b) < len("HTTP/1.1 200\r\n\r\n") || !bytes.HasPrefix(b, []byte("HTTP/1.1 ")) {
		return false
	}
	d := b[len("HTTP/1.1 "):]
	if d[0] < '2' || d[0] > '5' || !isDigit(d[1]) || !isDigit(d[2]) || (d[3] != ' ' && d[3] != '\r') {
		return false
	}
	h.status = int(d[0]-'0')*100 + int(d[1]-'0')*10 + int(d[2]-'0')
	eol := bytes.Index(b, []byte("\r\n"))
	if eol < len("HTTP/1.1 200") {
		return false // a bare LF ends the status line
	}
	for _, c := range b[len("HTTP/1.1 200"):eol] {
		if !isValueByte(c) {
			return false
		}
	}
	h.statusLine = b[:eol]
	return h.parseHeaders(b[eol+2:], false)
}

func (h *rawHead) reset() {
	h.method, h.target, h.statusLine = nil, nil, nil
	h.status, h.n, h.contentLength, h.close, h.hosts, h.idempotencyKey = 0, 0, -1, false, 0, false
	h.dropped, h.block, h.host = 0, nil, nil
}

// parseHeaders parses header lines up to the blank line that ends b.
func (h *rawHead) parseHeaders(b []byte, request bool) bool {
	h.block = b[:max(len(b)-2, 0)]
	for {
		if len(b) < 2 {
			return false
		}
		if b[0] == '\r' {
			return b[1] == '\n' && len(b) == 2 // the blank line ends the head
		}
		colon := -1
		for i, c := range b {
			if c == ':' {
				colon = i
				break
			}
			if !isTokenByte(c) {
				return false // includes obs-fold (a line starting with a space) and bare CR/LF
			}
		}
		if colon <= 0 || h.n == maxRawHeaders {
			return false
		}
		name := b[:colon]
		v := b[colon+1:]
		end := -1
		for i, c := range v {
			if c == '\r' {
				end = i
				break
			}
			if !isValueByte(c) {
				return false
			}
		}
		if end < 0 || end+1 >= len(v) || v[end+1] != '\n' {
			return false
		}
		value := trimOWS(v[:end])
		line := b[:colon+1+end+2]
		b = v[end+2:]
		hd := &h.headers[h.n]
		h.n++
		hd.name, hd.value, hd.line, hd.drop = name, value, line, false
		if !h.classify(hd, request) {
			return false
		}
		if hd.drop {
			h.dropped++
		}
	}
}

// classify notes the headers that frame or steer the message, marks the ones not to forward,
// and refuses the ones the raw lane leaves to the standard path.
func (h *rawHead) classify(hd *rawHeader, request bool) bool {
	name := hd.name
	switch len(name) {
	case 2:
		if asciiEqualFold(name, "te") {
			hd.drop = true
		}
	case 4:
		if request && asciiEqualFold(name, "host") {
			h.hosts++
			h.host = hd.value
			return validHost(hd.value)
		}
	case 6:
		if asciiEqualFold(name, "expect") {
			return false
		}
	case 7:
		if asciiEqualFold(name, "upgrade") {
			if request {
				return false
			}
			hd.drop = true
		} else if asciiEqualFold(name, "trailer") {
			hd.drop = true
		}
	case 10:
		if asciiEqualFold(name, "connection") {
			hd.drop = true
			return h.connectionTokens(hd.value)
		}
		if asciiEqualFold(name, "keep-alive") {
			hd.drop = true
		}
	case 14:
		if asciiEqualFold(name, "content-length") {
			if h.contentLength >= 0 || len(hd.value) == 0 || len(hd.value) > 15 {
				return false // repeated, empty or absurd: the standard path decides
			}
			var n int64
			for _, c := range hd.value {
				if !isDigit(c) {
					return false
				}
				n = n*10 + int64(c-'0')
			}
			h.contentLength = n
		}
	case 15:
		if asciiEqualFold(name, "idempotency-key") {
			h.idempotencyKey = true
		} else if request && asciiEqualFold(name, "x-forwarded-for") {
			hd.drop = true // forwarded with the client appended (rawlane.go)
		}
	case 16:
		if request && asciiEqualFold(name, "x-forwarded-host") {
			hd.drop = true // replaced by the proxy's own
		} else if asciiEqualFold(name, "proxy-connection") {
			hd.drop = true
		}
	case 17:
		if asciiEqualFold(name, "transfer-encoding") {
			return false
		}
		if request && asciiEqualFold(name, "x-forwarded-proto") {
			hd.drop = true
		}
	case 18:
		if asciiEqualFold(name, "proxy-authenticate") {
			hd.drop = true
		}
	case 19:
		if asciiEqualFold(name, "proxy-authorization") {
			hd.drop = true
		}
	}
	return true
}

// connectionTokens accepts a Connection value that names only close or keep-alive; a header it
// names would have to be removed too, which the standard path does.
func (h *rawHead) connectionTokens(v []byte) bool {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		tok := v
		if i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		tok = trimOWS(tok)
		switch {
		case len(tok) == 0:
		case asciiEqualFold(tok, "close"):
			h.close = true
		case asciiEqualFold(tok, "keep-alive"):
		default:
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// asciiEqualFold compares b with lower, which must be lower-case ASCII.
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isTokenByte reports a tchar of RFC 9110 §5.6.2.
func isTokenByte(c byte) bool { return tokenTable[c] }

func isToken(b []byte) bool {
	for _, c := range b {
		if !tokenTable[c] {
			return false
		}
	}
	return len(b) > 0
}

// isValueByte reports a byte allowed in a field value here: visible ASCII, space and tab
// (obs-text, bytes ≥ 0x80, goes to the standard path).
func isValueByte(c byte) bool { return c == '\t' || (c >= 0x20 && c < 0x7f) }

// validTarget accepts an origin-form request target of visible ASCII whose percent signs start
// valid escapes and which has no fragment.
func validTarget(b []byte) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c <= 0x20 || c >= 0x7f || c == '#':
			return false
		case c == '%':
			if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool { return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F') }

// validHost accepts a non-empty Host value that is a host and an optional port (RFC 9112 §3.2,
// RFC 3986 §3.2.2): a reg-name, an IPv4 address or a bracketed IPv6 address, then ":" and
// digits.
func validHost[T string | []byte](b T) bool {
	host := b
	if len(b) > 0 && b[0] == '[' {
		end := -1
		for i := 1; i < len(b); i++ {
			if b[i] == ']' {
				end = i
				break
			}
			if c := b[i]; !isHex(c) && c != ':' && c != '.' {
				return false
			}
		}
		if end < 2 {
			return false
		}
		host, b = b[:end+1], b[end+1:]
		if len(b) == 0 {
			return true
		}
		if b[0] != ':' {
			return false
		}
	} else {
		for i := 0; i < len(b); i++ {
			if b[i] == ':' {
				host, b = b[:i], b[i:]
				break
			}
			if !regNameTable[b[i]] {
				return false
			}
		}
		if len(host) == len(b) {
			return len(host) > 0 // no port
		}
	}
	for i := 1; i < len(b); i++ { // b is ":" and the port
		if !isDigit(b[i]) {
			return false
		}
	}
	return len(host) > 0
}

// validHostHeader accepts what validHost does, and an empty Host, which RFC 9112 §3.2 allows
// for a target without an authority.
func validHostHeader(h string) bool { return h == "" || validHost(h) }

// regNameTable holds the bytes of a reg-name: unreserved, sub-delims and "%" (RFC 3986 §3.2.2).
var regNameTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for _, c := range "-._~!$&'()*+,;=%" {
		t[c] = true
	}
	return t
}()

var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
