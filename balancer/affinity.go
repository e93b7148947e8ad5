package balancer

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// MinAffinityKeyLen is the shortest HMAC key [NewAffinity] accepts, in bytes.
const MinAffinityKeyLen = 16

// maxAffinityValue bounds the cookie values Verify will look at: browsers
// cap a cookie at about 4 KiB, and the bound keeps a hostile value from costing
// more than one small HMAC.
const maxAffinityValue = 4096

// Errors returned by [NewAffinity], joined when there are several.
var (
	// ErrAffinityKey is returned when the key is shorter than
	// MinAffinityKeyLen bytes.
	ErrAffinityKey = errors.New("affinity key too short")
	// ErrCookieName is returned when the cookie name is empty or not an
	// HTTP token (RFC 6265: letters, digits and !#$%&'*+-.^_`|~).
	ErrCookieName = errors.New("invalid affinity cookie name")
)

// encoding is unpadded base64url, whose alphabet is cookie-safe and has no
// '.'; Strict rejects non-zero trailing bits, so that (with Verify's check for
// CR and LF) every ID has exactly one valid value.
var encoding = base64.RawURLEncoding.Strict()

// Affinity signs and verifies session-affinity cookie values that name a
// backend, so that the proxy can pin a client to the backend that served it:
//
//	if c, err := r.Cookie(a.Name()); err == nil {
//		if id, ok := a.Verify(c.Value); ok {
//			b = lookup(id) // nil when that backend left the eligible set
//		}
//	}
//	if b == nil {
//		b = picker.Pick(key, tried)
//		// set cookie a.Name() = a.Sign(b.ID) on the response
//	}
//
// A value is base64url(ID) "." base64url(HMAC-SHA256(key, name, ID)). The MAC
// is bound to the cookie name, so a value minted for one cookie is rejected
// under another even with the same key. The MAC stops clients from steering
// themselves to a backend of their choosing; it does not hide the ID, which a
// client can decode — use instance IDs, not internal addresses, if that
// matters. Values carry no expiry: the cookie's own Max-Age bounds the
// pinning, and a stale pin only costs a fallback Pick.
//
// An Affinity is safe for concurrent use and must not be copied.
type Affinity struct {
	name string
	macs sync.Pool // of hash.Hash: HMAC-SHA256 keyed with the key
}

// NewAffinity returns an Affinity that signs with key (at least
// MinAffinityKeyLen bytes — 32 random bytes are recommended; the key is copied)
// for the cookie called cookieName. Every proxy replica must share the key for
// pins to survive a client landing on another replica.
func NewAffinity(key []byte, cookieName string) (*Affinity, error) {
	var errs []error
	if len(key) < MinAffinityKeyLen {
		errs = append(errs, fmt.Errorf("balancer: %w: got %d bytes, need at least %d",
			ErrAffinityKey, len(key), MinAffinityKeyLen))
	}
	if !isToken(cookieName) {
		errs = append(errs, fmt.Errorf("balancer: %w %q: use letters, digits and !#$%%&'*+-.^_`|~",
			ErrCookieName, cookieName))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	key = bytes.Clone(key)
	a := &Affinity{name: cookieName}
	a.macs.New = func() any { return hmac.New(sha256.New, key) }
	return a, nil
}

// Name returns the cookie name the Affinity was created with.
func (a *Affinity) Name() string { return a.name }

// Sign returns the cookie value that pins a client to the backend with the
// given ID. Keep IDs short: a value is about 4/3 of the ID's length plus 44
// bytes, and Verify rejects values over 4096 bytes, as browsers drop cookies
// that long.
func (a *Affinity) Sign(backendID string) string {
	var mac [sha256.Size]byte
	a.sum(&mac, backendID)
	buf := make([]byte, 0, encoding.EncodedLen(len(backendID))+1+encoding.EncodedLen(len(mac)))
	buf = encoding.AppendEncode(buf, []byte(backendID))
	buf = append(buf, '.')
	buf = encoding.AppendEncode(buf, mac[:])
	return string(buf)
}

// Verify returns the backend ID named by a cookie value made by Sign with the
// same key and cookie name, and ok = true. For any other value — tampered,
// truncated, garbled, signed with another key or for another cookie — it
// returns "", false. It never panics, and it compares MACs in constant time.
func (a *Affinity) Verify(value string) (backendID string, ok bool) {
	// Base64 decoders skip CR and LF even in strict mode; reject them so
	// that each ID has exactly one valid value.
	if len(value) > maxAffinityValue || strings.ContainsAny(value, "\r\n") {
		return "", false
	}
	encID, encMAC, found := strings.Cut(value, ".")
	if !found || len(encMAC) != encoding.EncodedLen(sha256.Size) {
		return "", false
	}
	var got [sha256.Size]byte
	if n, err := encoding.Decode(got[:], []byte(encMAC)); err != nil || n != len(got) {
		return "", false
	}
	id, err := encoding.AppendDecode(nil, []byte(encID))
	if err != nil {
		return "", false
	}
	var want [sha256.Size]byte
	a.sum(&want, string(id))
	if !hmac.Equal(got[:], want[:]) {
		return "", false
	}
	return string(id), true
}

// sum computes into out the HMAC-SHA256 of a domain-separation prefix, the
// cookie name and the backend ID, each length-prefixed so that no two
// (name, ID) pairs share an input.
func (a *Affinity) sum(out *[sha256.Size]byte, backendID string) {
	h := a.macs.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte("shoal/balancer/affinity/v1\x00"))
	writeLenPrefixed(h, a.name)
	writeLenPrefixed(h, backendID)
	h.Sum(out[:0])
	a.macs.Put(h)
}

// writeLenPrefixed writes the 8-byte big-endian length of s, then s. (Writes
// to a hash.Hash never fail.)
func writeLenPrefixed(h hash.Hash, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

// isToken reports whether s is a non-empty HTTP token (RFC 7230 tchar), which
// RFC 6265 requires of a cookie name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
