package messaging

import (
	"fmt"
	"strings"
)

// MaxTopicLength is the longest topic or pattern accepted, in bytes. Kafka allows 249
// characters in a topic name, and shoal's backends prepend messaging.topic and a dot.
const MaxTopicLength = 200

// DeadLetterSuffix is the last token of a dead-letter topic: the dead letters of
// "user.created" go to "user.created.dlq".
const DeadLetterSuffix = "dlq"

// Pattern is a parsed subscription pattern: tokens separated by dots, where "*" stands for
// exactly one token and a final ">" for one or more tokens. "user.*" matches "user.created"
// but neither "user.a.b" nor "user"; "user.>" matches "user.created" and "user.a.b" but not
// "user".
type Pattern struct {
	raw    string
	tokens []string
}

// ParsePattern checks and parses a pattern. Its error is a *PatternError that wraps
// ErrInvalidPattern.
func ParsePattern(s string) (Pattern, error) {
	if err := checkTokens(s, true); err != nil {
		return Pattern{}, &PatternError{Pattern: s, Reason: err.Error()}
	}
	return Pattern{raw: s, tokens: strings.Split(s, ".")}, nil
}

// MustPattern is ParsePattern for patterns written in the program; it panics on an invalid one.
func MustPattern(s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Tokens returns the pattern's tokens ("*" and ">" included).
func (p Pattern) Tokens() []string { return append([]string(nil), p.tokens...) }

// Literal reports whether the pattern has no wildcard, and so names one topic.
func (p Pattern) Literal() bool {
	for _, t := range p.tokens {
		if t == "*" || t == ">" {
			return false
		}
	}
	return true
}

// Match reports whether topic matches the pattern. It is the reference matcher: every
// backend's native form of a pattern (NATS subject, RabbitMQ binding key, Kafka regular
// expression) is tested against it.
func (p Pattern) Match(topic string) bool {
	toks := p.tokens
	for i, pt := range toks {
		if topic == "" {
			return false // the topic has fewer tokens than the pattern
		}
		tok, rest, more := strings.Cut(topic, ".")
		switch pt {
		case ">":
			return i == len(toks)-1 // the topic has at least one token left
		case "*":
		default:
			if tok != pt {
				return false
			}
		}
		if !more {
			return i == len(toks)-1
		}
		topic = rest
	}
	return false // the topic has more tokens than the pattern
}

// deadLetters reports whether a subscription to p receives dead letters: only when it names
// them, with "dlq" as its last token. Otherwise "user.>" would receive the dead letters of
// its own failures.
func (p Pattern) deadLetters() bool { return p.tokens[len(p.tokens)-1] == DeadLetterSuffix }

// Match reports whether topic matches pattern; an invalid pattern matches nothing.
func Match(pattern, topic string) bool {
	p, err := ParsePattern(pattern)
	return err == nil && p.Match(topic)
}

// ValidateTopic checks a topic name: dot-separated tokens of letters, digits, "_" and "-",
// none empty, none starting with "_" (reserved for shoal's own topics), no wildcards, at
// most MaxTopicLength bytes. Its error is a *TopicError that wraps ErrInvalidTopic.
func ValidateTopic(topic string) error {
	if err := checkTokens(topic, false); err != nil {
		return &TopicError{Topic: topic, Reason: err.Error()}
	}
	return nil
}

// IsDeadLetterTopic reports whether topic is a dead-letter topic (its last token is "dlq").
func IsDeadLetterTopic(topic string) bool {
	return topic == DeadLetterSuffix || strings.HasSuffix(topic, "."+DeadLetterSuffix)
}

// DeadLetterTopic returns the topic the dead letters of topic go to.
func DeadLetterTopic(topic string) string { return topic + "." + DeadLetterSuffix }

func checkTokens(s string, wildcards bool) error {
	what := "a topic"
	if wildcards {
		what = "a pattern"
	}
	switch {
	case s == "":
		return fmt.Errorf("%s must not be empty; write dot-separated tokens such as user.created", what)
	case len(s) > MaxTopicLength:
		return fmt.Errorf("%s is at most %d bytes long, this one has %d", what, MaxTopicLength, len(s))
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("token %d is empty; tokens are separated by single dots and the name neither starts nor ends with one", i+1)
		case t == "*" || t == ">":
			if !wildcards {
				return fmt.Errorf("token %d is the wildcard %q, which only patterns may hold; publish to a concrete topic", i+1, t)
			}
			if t == ">" && i != len(toks)-1 {
				return fmt.Errorf("%q may only be the last token (it matches one or more trailing tokens); use \"*\" for exactly one token", t)
			}
		case t[0] == '_':
			return fmt.Errorf("token %q starts with \"_\", which is reserved for shoal's own topics", t)
		default:
			for j := 0; j < len(t); j++ {
				c := t[j]
				if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
					continue
				}
				if c == '*' || c == '>' {
					return fmt.Errorf("token %q mixes a wildcard with other characters; a wildcard (\"*\" or \">\") must be a whole token", t)
				}
				if c >= 0x80 {
					return fmt.Errorf("token %q holds a non-ASCII character; tokens may hold only ASCII letters, digits, \"_\" and \"-\"", t)
				}
				return fmt.Errorf("token %q holds %q; tokens may hold only letters, digits, \"_\" and \"-\"", t, string(rune(c)))
			}
		}
	}
	return nil
}
