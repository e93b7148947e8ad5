package config

import (
	"fmt"
	"sort"
	"strings"
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
}

func (ps *problems) add(p Problem) {
	k := p.String()
	if ps.seen == nil {
		ps.seen = map[string]bool{}
	}
	if ps.seen[k] {
		return
	}
	ps.seen[k] = true
	ps.list = append(ps.list, p)
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
	return &Error{Problems: ps.list}
}
