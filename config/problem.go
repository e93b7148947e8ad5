package config

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// Problem is one thing wrong with a configuration, located in its file.
type Problem struct {
	Pos
	// Path is the dotted path of the value, e.g. "scaling.load_balancer.algorithm" or
	// "health.checks[2].type".
	Path string
	// Message says what is wrong and how to fix it.
	Message string
}

// String formats p as file:line:col: path: message.
func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
	}
	if p.Path == "" {
		return loc + ": " + p.Message
	}
	return loc + ": " + p.Path + ": " + p.Message
}

// Error is an invalid configuration: every problem found, in file order.
type Error struct {
	Problems []Problem
}

// Error lists every problem, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problems collects Problems, dropping exact duplicates (the same mistake found when validating
// the base and again under each environment).
type problems struct {
	list []Problem
	seen map[string]bool
	more int // problems past maxProblems, counted, not kept
}

// A file that repeats one mistake many times (or an alias that repeats a large value) must not
// make an error the size of the file times the repetitions: at most maxProblems are kept, each
// message and path shortened to maxMessage bytes.
const (
	maxProblems = 100
	maxMessage  = 400
)

func (ps *problems) add(p Problem) {
	p.Message = shorten(p.Message, maxMessage)
	p.Path = shorten(p.Path, maxMessage/2)
	k := p.String()
	if ps.seen == nil {
		ps.seen = map[string]bool{}
	}
	if ps.seen[k] {
		return
	}
	if len(ps.list) >= maxProblems {
		ps.more++
		return
	}
	ps.seen[k] = true
	ps.list = append(ps.list, p)
}

// shorten keeps s within n bytes: its start and its end (where the advice usually is), with an
// ellipsis between.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	head, tail := n*2/3, n/3-len("…")
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	cut := len(s) - tail
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return s[:head] + "…" + s[cut:]
}

// quoteShort quotes a value from the file for a message, at most its first 40 bytes.
func quoteShort(s string) string {
	const n = 40
	if len(s) <= n {
		return fmt.Sprintf("%q", s)
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	sort.SliceStable(ps.list, func(i, j int) bool {
		a, b := ps.list[i], ps.list[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	if ps.more > 0 {
		last := ps.list[len(ps.list)-1]
		ps.list = append(ps.list, Problem{Pos: Pos{File: last.File}, Message: fmt.Sprintf(
			"and %d more problems not shown; fix these first", ps.more)})
	}
	return &Error{Problems: ps.list}
}
