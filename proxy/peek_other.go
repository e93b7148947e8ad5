//go:build !unix

package proxy

import "errors"

// canPeek is false where sockets cannot be peeked at without waiting (Windows): the proxy then
// does not watch a waiting client for a hang-up, and does not check a pooled connection before
// a request that may not be sent twice.
const canPeek = false

func peekSocket(uintptr) (int, error) { return 0, errors.ErrUnsupported }
