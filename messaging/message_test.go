package messaging_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shoal-sh/shoal/messaging"
)

// TestNewID_IsAnOrderedUUIDv7: valid UUIDv7s, unique, carrying the time they were made,
// sorting in time order when made a millisecond apart.
func TestNewID_IsAnOrderedUUIDv7(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := range 20000 {
		before := time.Now().UnixMilli()
		id := messaging.NewID()
		after := time.Now().UnixMilli()
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("NewID() = %q: parse error %v, version %d, variant %v; want a UUIDv7", id, err, u.Version(), u.Variant())
		}
		if ms := int64(binary.BigEndian.Uint64(append([]byte{0, 0}, u[:6]...))); ms < before || ms > after {
			t.Fatalf("NewID() = %q holds %d ms; it was made between %d and %d", id, ms, before, after)
		}
		if seen[id] {
			t.Fatalf("NewID() returned %q twice in %d calls", id, i)
		}
		seen[id] = true
		if i%2000 == 0 {
			if prev != "" && id <= prev {
				t.Fatalf("NewID() = %q sorts before %q, made over a millisecond earlier", id, prev)
			}
			prev = id
			time.Sleep(2 * time.Millisecond)
		}
	}
}

func BenchmarkNewID(b *testing.B) {
	for b.Loop() {
		messaging.NewID()
	}
}
