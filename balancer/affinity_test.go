package balancer

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var testKey = bytes.Repeat([]byte{0x5a}, 32)

// newTestAffinity returns an Affinity with testKey for the cookie "shoal_lb".
func newTestAffinity(t testing.TB) *Affinity {
	t.Helper()
	a, err := NewAffinity(testKey, "shoal_lb")
	if err != nil {
		t.Fatalf("NewAffinity: %v", err)
	}
	return a
}

func TestNewAffinity(t *testing.T) {
	t.Parallel()

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		a := newTestAffinity(t)
		if a.Name() != "shoal_lb" {
			t.Errorf("Name = %q, want shoal_lb", a.Name())
		}
	})

	t.Run("CopiesKey", func(t *testing.T) {
		t.Parallel()
		key := bytes.Clone(testKey)
		a, err := NewAffinity(key, "lb")
		if err != nil {
			t.Fatal(err)
		}
		v := a.Sign("b1")
		key[0] ^= 1
		if _, ok := a.Verify(v); !ok {
			t.Error("changing the caller's key slice changed the Affinity's key")
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			key  []byte
			name string
			want []error
		}{
			{nil, "lb", []error{ErrAffinityKey}},
			{testKey[:15], "lb", []error{ErrAffinityKey}},
			{testKey, "", []error{ErrCookieName}},
			{testKey, "my cookie", []error{ErrCookieName}},
			{testKey, "lb;", []error{ErrCookieName}},
			{testKey, "lbé", []error{ErrCookieName}},
			{[]byte("short"), "a=b", []error{ErrAffinityKey, ErrCookieName}}, // both reported
		} {
			a, err := NewAffinity(tc.key, tc.name)
			if a != nil || err == nil {
				t.Errorf("NewAffinity(%d-byte key, %q) = %v, %v; want an error", len(tc.key), tc.name, a, err)
				continue
			}
			for _, want := range tc.want {
				if !errors.Is(err, want) {
					t.Errorf("NewAffinity(%d-byte key, %q) error %q is not %v", len(tc.key), tc.name, err, want)
				}
			}
		}
	})
}

func TestAffinity_Verify(t *testing.T) {
	t.Parallel()
	a := newTestAffinity(t)

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		for _, id := range []string{"i-0abc", "http://10.0.0.5:8080", "", "with.dots.and=signs;", "ünï\x00cøde"} {
			v := a.Sign(id)
			if strings.ContainsAny(v, " ;,\"\\") {
				t.Errorf("Sign(%q) = %q: not a valid cookie value", id, v)
			}
			if got, ok := a.Verify(v); !ok || got != id {
				t.Errorf("Verify(Sign(%q)) = %q, %v", id, got, ok)
			}
		}
	})

	t.Run("Rejects", func(t *testing.T) {
		t.Parallel()
		v := a.Sign("backend-1")
		id, mac, _ := strings.Cut(v, ".")
		otherKey, _ := NewAffinity(bytes.Repeat([]byte{1}, 32), "shoal_lb")
		otherName, _ := NewAffinity(testKey, "other")
		flip := func(s string, i int) string {
			b := []byte(s)
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			return string(b)
		}
		for name, value := range map[string]string{
			"empty":          "",
			"no separator":   id + mac,
			"swapped id":     a.Sign("backend-2")[:strings.Index(a.Sign("backend-2"), ".")] + "." + mac,
			"tampered id":    flip(id, 0) + "." + mac,
			"tampered mac":   id + "." + flip(mac, 5),
			"truncated mac":  id + "." + mac[:len(mac)-1],
			"extended mac":   v + "A",
			"padded base64":  id + "." + mac + "=",
			"bad base64":     "!!!." + mac,
			"other key":      otherKey.Sign("backend-1"),
			"other cookie":   otherName.Sign("backend-1"),
			"extra part":     v + ".x",
			"only separator": ".",
			"huge":           strings.Repeat("A", 10000) + "." + mac,
			"newline in id":  id[:1] + "\n" + id[1:] + "." + mac,
		} {
			if got, ok := a.Verify(value); ok || got != "" {
				t.Errorf("%s: Verify(%q) = %q, %v; want \"\", false", name, value, got, ok)
			}
		}
	})
}

func FuzzAffinity_Verify(f *testing.F) {
	a := newTestAffinity(f)
	v := a.Sign("backend-1")
	// Base64 decoders skip CR and LF even in strict mode; Verify must not.
	crlf := v[:2] + "\r\n" + v[2:]
	for _, seed := range []string{v, v[:len(v)-1], v + "A", "", ".", "a.b", "YmFja2VuZC0x.", strings.ToUpper(v), crlf} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		id, ok := a.Verify(value) // must not panic
		if !ok {
			if id != "" {
				t.Errorf("Verify(%q) = %q, false; want an empty ID when rejected", value, id)
			}
			return
		}
		// Encodings are canonical: an accepted value is exactly what Sign
		// produces for its ID, so the fuzzer found no forgery.
		if s := a.Sign(id); s != value {
			t.Errorf("Verify accepted %q for ID %q, but Sign gives %q", value, id, s)
		}
	})
}

func FuzzAffinity_Sign(f *testing.F) {
	a := newTestAffinity(f)
	for _, seed := range []string{"", "i-1", "http://[::1]:80/", "\xff\xfe"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, ok := a.Verify(a.Sign(id)); (!ok || got != id) && len(a.Sign(id)) <= maxAffinityValue {
			t.Errorf("Verify(Sign(%q)) = %q, %v", id, got, ok)
		}
	})
}
