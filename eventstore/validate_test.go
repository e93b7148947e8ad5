package eventstore

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzPrepareAppend: whatever the input, PrepareAppend either refuses it with an error of the
// store's kinds or returns events every backend can store.
func FuzzPrepareAppend(f *testing.F) {
	f.Add("account-1", "Deposited", `{"amount":1}`, "")
	f.Add("", "A", "{}", "")
	f.Add("$all", "A", "{}", "")
	f.Add("a\x00b", "A", "{}", "")
	f.Add("s", "has space", "{}", "")
	f.Add("s", "A", `{"a":`, "")
	f.Add("s", "A", "", "not-a-uuid")
	f.Add("s", "9type", "[]", "0196F2C8-1234-7abc-8def-0123456789ab")
	f.Add(strings.Repeat("x", MaxStreamLen+1), "A", "1", "")
	f.Fuzz(func(t *testing.T, stream, typ, data, id string) {
		evs, err := PrepareAppend(stream, Any, []EventData{{ID: id, Type: typ, Data: []byte(data)}})
		if err != nil {
			if !errors.Is(err, ErrInvalidStream) && !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("error of no known kind: %v", err)
			}
			if err.Error() == "" {
				t.Fatal("empty message")
			}
			return
		}
		if len(evs) != 1 || len(evs[0].ID) != 36 || strings.ToLower(evs[0].ID) != evs[0].ID {
			t.Fatalf("prepared %+v", evs)
		}
		if stream == "" || len(stream) > MaxStreamLen || !utf8.ValidString(stream) || stream[0] == '$' {
			t.Fatalf("stream %q accepted", stream)
		}
		if ValidateType(evs[0].Type) != nil || len(evs[0].Data) == 0 {
			t.Fatalf("event %+v accepted", evs[0])
		}
	})
}

func TestExpectedVersionString(t *testing.T) {
	for e, want := range map[ExpectedVersion]string{Any: "any", NoStream: "no stream", StreamExists: "stream exists", Exact(7): "7", -9: "invalid(-9)"} {
		if e.String() != want {
			t.Errorf("%d.String() = %q, want %q", int64(e), e.String(), want)
		}
	}
}
