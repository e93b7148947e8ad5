package dns

import (
	"fmt"

	miekg "github.com/miekg/dns"
)

// QueryError is a DNS query that failed: the server could not be reached,
// did not answer in time, sent something unusable, or answered with an error
// code such as SERVFAIL or REFUSED. NXDOMAIN and NODATA are not errors; see
// the package documentation.
type QueryError struct {
	// Name queried, fully qualified.
	Name string
	// Type queried: "A", "AAAA" or "SRV".
	Type string
	// Server queried, host:port.
	Server string
	// Rcode is the server's response code (see miekg/dns's Rcode constants)
	// when Err is nil.
	Rcode int
	// Err is why there was no usable response; nil when the server answered
	// with Rcode.
	Err error
}

// Error implements error.
func (e *QueryError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("dns: %s %s at %s: %v", e.Type, e.Name, e.Server, e.Err)
	}
	rcode, ok := miekg.RcodeToString[e.Rcode]
	if !ok {
		rcode = fmt.Sprintf("rcode %d", e.Rcode)
	}
	return fmt.Sprintf("dns: %s %s at %s: server answered %s", e.Type, e.Name, e.Server, rcode)
}

// Unwrap returns Err.
func (e *QueryError) Unwrap() error { return e.Err }
