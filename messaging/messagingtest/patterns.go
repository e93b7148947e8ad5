package messagingtest

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shoal-sh/shoal/messaging"
)

// CheckPatterns checks a backend's compiled form of patterns against the reference matcher
// (messaging.Pattern.Match) on n random patterns, each tried on random topics and on topics
// built to match it. match reports whether the backend's native form of pattern accepts
// topic.
func CheckPatterns(t *testing.T, n int, match func(pattern messaging.Pattern, topic string) bool) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, uint64(n)))
	words := []string{"user", "created", "a", "b", "dlq", "x-1", "Z_9"}
	topic := func() string {
		toks := make([]string, 1+r.IntN(5))
		for i := range toks {
			toks[i] = words[r.IntN(len(words))]
		}
		return strings.Join(toks, ".")
	}
	failures := 0
	for range n {
		toks := make([]string, 1+r.IntN(4))
		for i := range toks {
			switch x := r.IntN(10); {
			case x < 3:
				toks[i] = "*"
			case x < 4 && i == len(toks)-1:
				toks[i] = ">"
			default:
				toks[i] = words[r.IntN(len(words))]
			}
		}
		p := messaging.MustPattern(strings.Join(toks, "."))
		topics := []string{topic(), topic(), topic(), instance(r, toks, words), instance(r, toks, words)}
		for _, tp := range topics {
			want := p.Match(tp)
			if got := match(p, tp); got != want {
				failures++
				t.Errorf("pattern %q, topic %q: backend says %v, reference matcher %v", p, tp, got, want)
				if failures > 20 {
					t.FailNow()
				}
			}
		}
	}
}

// instance returns a topic that matches the pattern's tokens.
func instance(r *rand.Rand, toks, words []string) string {
	var out []string
	for _, t := range toks {
		switch t {
		case "*":
			out = append(out, words[r.IntN(len(words))])
		case ">":
			for range 1 + r.IntN(3) {
				out = append(out, words[r.IntN(len(words))])
			}
		default:
			out = append(out, t)
		}
	}
	return strings.Join(out, ".")
}
