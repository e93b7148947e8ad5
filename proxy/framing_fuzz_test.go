package proxy

import (
	"net"
	"testing"
)

// FuzzFramingConn feeds arbitrary bytes, in arbitrary pieces, to the request-framing tracker:
// it must never panic, and a stream of well-formed requests split anywhere must give the
// same verdicts as the stream fed whole.
func FuzzFramingConn(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), uint8(3))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext\r\nhello\r\n0\r\nT: 1\r\n\r\n"), uint8(7))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), uint8(1))
	f.Add([]byte("\r\n\r\nGET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"), uint8(2))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nGET /SMUGGLED HTTP/1.1\r\n\r\n"), uint8(4))
	f.Add([]byte("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), uint8(5))
	f.Add([]byte("GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\nTransfer-Encoding\t: chunked\r\n\r\n"), uint8(6))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		whole := &framingConn{Conn: nopConn{}}
		whole.feed(data)
		pieces := &framingConn{Conn: nopConn{}}
		step := int(split)%16 + 1
		for i := 0; i < len(data); i += step {
			pieces.feed(data[i:min(i+step, len(data))])
		}
		if len(whole.verdicts) != len(pieces.verdicts) {
			t.Fatalf("verdicts differ by split: %v vs %v", whole.verdicts, pieces.verdicts)
		}
		for i := range whole.verdicts {
			if whole.verdicts[i] != pieces.verdicts[i] {
				t.Fatalf("verdict %d differs by split", i)
			}
		}
	})
}

type nopConn struct{ net.Conn }
