package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// unresolved is a ${VAR} with no value and no default. Whether it is an error depends on
// whether the value is used (see inactive).
type unresolved struct {
	name string
	path string
	pos  Pos
}

// interpolator expands ${VAR}, ${VAR:-default}, ${VAR-default} and ${VAR:?message} in scalar
// values (never in keys); $$ is a literal $. A lone $ not followed by { or $ stays as written.
type interpolator struct {
	file       string
	lookup     func(string) (string, bool)
	templates  map[string]string
	unresolved []unresolved
	problems   *problems
	seen       map[*yaml.Node]bool
}

func (ip *interpolator) walk(n *yaml.Node, path string) {
	if n == nil || ip.seen[n] {
		return
	}
	ip.seen[n] = true
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			ip.walk(c, p)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			ip.walk(n.Content[i+1], join(path, n.Content[i].Value))
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		out, changed := ip.expand(n, path)
		if !changed {
			return
		}
		ip.templates[path] = n.Value
		n.Value = out
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			// A plain scalar is typed by what it holds after expansion: port: ${PORT} is a number.
			n.Tag = ""
		}
	}
}

func (ip *interpolator) problemf(n *yaml.Node, path, format string, args ...any) {
	ip.problems.add(Problem{Pos: Pos{File: ip.file, Line: n.Line, Column: n.Column}, Path: path,
		Message: fmt.Sprintf(format, args...)})
}

// Reference is one ${…} in a configuration value.
type Reference struct {
	// Name of the variable; Valid is false when it is not a variable name.
	Name  string
	Valid bool
	// Op is "" for ${NAME}, ":-" or "-" for a default, ":?" for a required variable's message;
	// Arg is the default or the message.
	Op, Arg string
	// Start and End are the byte offsets of the whole ${…} in the value.
	Start, End int
}

// HasDefault reports whether the reference gives a default value.
func (r Reference) HasDefault() bool { return r.Op == ":-" || r.Op == "-" }

// References returns the ${…} references of a raw value, as interpolation reads them:
// ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}; $$ is a literal $ and a lone $
// stays as written. Generators use it on Meta.Templates to turn variables into references.
func References(s string) []Reference {
	var refs []Reference
	scanRefs(s, func(string) {}, func(r Reference) { refs = append(refs, r) })
	return refs
}

// scanRefs walks s in order, giving literal text to lit ($$ already turned into $) and each
// reference to ref. It reports whether a ${ was left without its closing }, in which case the
// rest of s is not read.
func scanRefs(s string, lit func(string), ref func(Reference)) (unterminated bool) {
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '$')
		if j < 0 {
			lit(s[i:])
			return false
		}
		lit(s[i : i+j])
		i += j
		switch {
		case i+1 < len(s) && s[i+1] == '$':
			lit("$")
			i += 2
		case i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return true
			}
			name, op, arg := splitExpr(s[i+2 : i+2+end])
			ref(Reference{Name: name, Valid: validVarName(name), Op: op, Arg: arg, Start: i, End: i + 2 + end + 1})
			i += 2 + end + 1
		default:
			lit("$")
			i++
		}
	}
	return false
}

// expand returns s with every reference replaced, and whether anything was.
func (ip *interpolator) expand(n *yaml.Node, path string) (string, bool) {
	s := n.Value
	var b strings.Builder
	changed := strings.Contains(s, "$$")
	unterminated := scanRefs(s, func(t string) { b.WriteString(t) }, func(r Reference) {
		changed = true
		if !r.Valid {
			ip.problemf(n, path, "%s is not a valid variable reference; names are letters, digits and _, not starting with a digit", s[r.Start:r.End])
			return
		}
		val, set := ip.lookup(r.Name)
		switch {
		case r.Op == ":-" && (!set || val == ""), r.Op == "-" && !set:
			b.WriteString(r.Arg)
		case r.Op == ":?" && (!set || val == ""):
			msg := r.Arg
			if msg == "" {
				msg = "it is required"
			}
			ip.problemf(n, path, "${%s} is not set: %s", r.Name, msg)
		case set:
			b.WriteString(val)
		default:
			ip.unresolved = append(ip.unresolved, unresolved{name: r.Name, path: path,
				pos: Pos{File: ip.file, Line: n.Line, Column: n.Column}})
		}
	})
	if unterminated {
		ip.problemf(n, path, "%s opens ${ without a closing }; write ${NAME} or $$ for a literal $", quoteShort(s))
		return s, false
	}
	return b.String(), changed
}

func splitExpr(expr string) (name, op, arg string) {
	for i := 0; i < len(expr); i++ {
		switch {
		case strings.HasPrefix(expr[i:], ":-"), strings.HasPrefix(expr[i:], ":?"):
			return expr[:i], expr[i : i+2], expr[i+2:]
		case expr[i] == '-':
			return expr[:i], "-", expr[i+1:]
		}
	}
	return expr, "", ""
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Inactive reports whether the value at the dotted path is unused under c, so that a ${VAR}
// in it needs no value: the options of a discovery method or broker that is not selected, or
// the jobs block when jobs are off. Generators use it to mark such references optional.
func Inactive(c *Config, path string) bool {
	sd := c.Scaling.ServiceDiscovery
	for _, m := range []string{DiscoveryStatic, DiscoveryDNS, DiscoveryConsul, DiscoveryEtcd} {
		if sd.Method != m && strings.HasPrefix(path, "scaling.service_discovery."+m+".") {
			return true
		}
	}
	for _, m := range []string{MessagingKafka, MessagingRabbitMQ, MessagingNATS} {
		if c.Messaging.Type != m && strings.HasPrefix(path, "messaging."+m+".") {
			return true
		}
	}
	if !c.Jobs.Enabled && strings.HasPrefix(path, "jobs.") {
		return true
	}
	return false
}
