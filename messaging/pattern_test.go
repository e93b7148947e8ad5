package messaging_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shoal-sh/shoal/messaging"
)

func TestPattern_Match(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, topic string
		want           bool
	}{
		{"user.*", "user.created", true},
		{"user.*", "user.a.b", false},
		{"user.*", "user", false},
		{"user.>", "user.created", true},
		{"user.>", "user.a.b", true},
		{"user.>", "user", false},
		{">", "a", true},
		{">", "a.b.c", true},
		{"*", "a", true},
		{"*", "a.b", false},
		{"a.b", "a.b", true},
		{"a.b", "a.b.c", false},
		{"a.b.c", "a.b", false},
		{"*.b.>", "x.b.y", true},
		{"*.b.>", "x.b", false},
		{"*.*", "x.y", true},
	}
	for _, c := range cases {
		if got := messaging.Match(c.pattern, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.topic, got, c.want)
		}
	}
}

func TestParsePattern_Errors(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", ".", "a.", ".a", "a..b", "a.>.b", "a*", "*a", ">a", "a b", "a.b\n", "naïve", "_x", strings.Repeat("a", 201)} {
		_, err := messaging.ParsePattern(p)
		var pe *messaging.PatternError
		if !errors.As(err, &pe) || !errors.Is(err, messaging.ErrInvalidPattern) || pe.Reason == "" {
			t.Errorf("ParsePattern(%q) = %v, want a *PatternError", p, err)
		}
	}
	for _, p := range []string{"a", "a.*", "a.>", "*.*.>", ">", "A-b_c.9"} {
		if _, err := messaging.ParsePattern(p); err != nil {
			t.Errorf("ParsePattern(%q) = %v", p, err)
		}
	}
}

func TestValidateTopic(t *testing.T) {
	t.Parallel()
	for _, topic := range []string{"", "a.*", ">", "a..b", "a.", "a/b", "_internal.x"} {
		if err := messaging.ValidateTopic(topic); !errors.Is(err, messaging.ErrInvalidTopic) {
			t.Errorf("ValidateTopic(%q) = %v, want ErrInvalidTopic", topic, err)
		}
	}
	if err := messaging.ValidateTopic(""); !strings.Contains(err.Error(), "must not be empty") {
		t.Errorf("empty topic error %q does not say so", err)
	}
}

// FuzzParsePattern: any input either parses, into a pattern that matches its own literal
// instances and round-trips, or is refused with a *PatternError — never a panic.
func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"user.*", "user.>", "a.b.c", "", "a..b", ">", "*.x.>", "x\x00y"} {
		f.Add(s, "user.created")
	}
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		p, err := messaging.ParsePattern(pattern)
		if err != nil {
			var pe *messaging.PatternError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *PatternError", err)
			}
			return
		}
		if p.String() != pattern {
			t.Fatalf("String() = %q", p.String())
		}
		if p.Literal() && !p.Match(pattern) {
			t.Fatalf("literal pattern %q does not match itself", pattern)
		}
		// The reference matcher and a literal pattern agree: a literal matches only itself.
		if p.Literal() && p.Match(topic) != (topic == pattern) {
			t.Fatalf("literal pattern %q: Match(%q) = %v", pattern, topic, p.Match(topic))
		}
	})
}

func TestPattern_ReferenceAgainstItself(t *testing.T) {
	t.Parallel()
	// The property helper the backends use, run on the reference itself, must pass.
	checkPatterns(t)
}
