package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/invopop/jsonschema"
	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as in the seed: "30s", "300s", "1h", "1h30m", "500ms".
// A "d" suffix counts days ("7d"). A bare number is refused, because "30" could mean seconds or
// milliseconds; write "30s".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Seconds returns d in whole seconds, rounded up, for manifests that count seconds.
func (d Duration) Seconds() int32 {
	return int32((time.Duration(d) + time.Second - 1) / time.Second)
}

// String formats d the way it is written in YAML ("30s", "5m0s" becomes "5m").
func (d Duration) String() string {
	s := time.Duration(d).String()
	// time.Duration prints "5m0s" and "1h0m0s"; trim the zero units for readability.
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ParseDuration parses a duration as Duration documents.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New(`empty duration; write a number with a unit, e.g. "30s"`)
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf(`duration %q has no unit; write e.g. "%ss" or "%sms"`, s, s, s)
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n > 106751 || n < -106751 {
			return 0, fmt.Errorf(`invalid duration %q; write e.g. "7d", "12h" or "30s"`, s)
		}
		return Duration(n * float64(24*time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf(`invalid duration %q; write a number with a unit (ms, s, m, h, d), e.g. "30s"`, s)
	}
	return Duration(v), nil
}

// MarshalYAML writes d as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads d from a string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\": %w", err)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func (d *Duration) decodeNode(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New(`expected a duration such as "30s"`)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative; durations must be zero or more", n.Value)
	}
	*d = v
	return nil
}

// JSONSchema describes Duration for editors.
func (Duration) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:        "string",
		Pattern:     `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^[0-9]+(\.[0-9]+)?d$`,
		Description: `A duration with a unit: "500ms", "30s", "5m", "1h", "7d".`,
		Examples:    []any{"30s", "5m", "1h"},
	}
}

// Command is a command line: written as one string (split like a shell would: quotes group
// words, backslash escapes, nothing is expanded) or as a list of arguments.
type Command []string

func (c *Command) decodeNode(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*c = nil
			return nil
		}
		args, err := SplitCommand(n.Value)
		if err != nil {
			return err
		}
		*c = args
		return nil
	case yaml.SequenceNode:
		args := make([]string, 0, len(n.Content))
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode {
				return errors.New("expected a list of strings")
			}
			args = append(args, e.Value)
		}
		*c = args
		return nil
	}
	return errors.New(`expected a command: a string such as "./bin/api --port 3000" or a list of arguments`)
}

// JSONSchema describes Command for editors.
func (Command) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		OneOf: []*jsonschema.Schema{
			{Type: "string"},
			{Type: "array", Items: &jsonschema.Schema{Type: "string"}},
		},
		Description: "A command line: a string split like a shell would, or a list of arguments.",
	}
}

// SplitCommand splits s into arguments the way a POSIX shell splits words, without any expansion.
// Written by hand: the well-known shlex packages are unmaintained, and this needs only quoting.
func SplitCommand(s string) ([]string, error) {
	var (
		args    []string
		cur     strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in command %q", quote, s)
	}
	if escaped {
		return nil, fmt.Errorf("command %q ends with a lone backslash", s)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// Meta says where a Config came from.
type Meta struct {
	// File is the path the configuration was read from.
	File string
	// Dir is the directory of File; relative paths in the configuration are relative to it.
	Dir string
	// Env is the selected environment, or "" for the base configuration.
	Env string
	// Environments are the names defined under environments:, in file order.
	Environments []string
	// Templates maps a dotted path to the raw value it had before ${VAR} interpolation, for
	// values that used a variable. Generators use it to turn secrets into references
	// instead of inlining them.
	Templates map[string]string
	// positions maps a dotted path to where its value is written.
	positions map[string]Pos
}

// Pos is a place in a file.
type Pos struct {
	File   string
	Line   int
	Column int
}

// Position returns where the value at the dotted path (e.g. "scaling.instances.min_instances")
// is written, or where its nearest written ancestor is.
func (m Meta) Position(path string) Pos {
	for p := path; ; {
		if pos, ok := m.positions[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	if pos, ok := m.positions[""]; ok {
		return pos
	}
	return Pos{File: m.File, Line: 1, Column: 1}
}
