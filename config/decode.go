package config

// The decoder maps a YAML node tree onto the config structs. It is written here rather than
// left to yaml.v3's Decode because the loader must report every problem at once, each with its
// line, column and dotted path, suggest the nearest key for a misspelt one, and apply defaults
// to list items as they are created; yaml.v3 stops at the first unknown field and reports type
// errors by line only.

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/agnivade/levenshtein"
	"go.yaml.in/yaml/v3"
)

// nodeDecoder is implemented by types that read themselves from a node (Duration, Command).
type nodeDecoder interface{ decodeNode(*yaml.Node) error }

const (
	maxDepth = 64
	// maxNodes bounds the work of one decode, so a document of nested aliases ("billion laughs")
	// is refused instead of expanded.
	maxNodes = 100_000
	// maxExpanded bounds the bytes of the values one decode reads: aliases of one large value
	// are few nodes but many bytes (a 3 MiB string aliased 1,000 times is 3 GiB).
	maxExpanded = 8 << 20
)

type decoder struct {
	file      string
	problems  *problems
	positions map[string]Pos
	visited   int
	expanded  int // bytes of scalar values read, aliases counted each time
	exhausted bool
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Column: n.Column} }

func (d *decoder) problemf(n *yaml.Node, path, format string, args ...any) {
	d.problems.add(Problem{Pos: d.pos(n), Path: path, Message: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return quoteShort(n.Value)
	}
	return "nothing"
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	d.visited++
	if n.Kind == yaml.ScalarNode {
		d.expanded += len(n.Value)
	}
	if d.visited > maxNodes || depth > maxDepth || d.expanded > maxExpanded {
		if !d.exhausted {
			d.exhausted = true
			d.problemf(n, path, "the document is too large or too deeply nested (more than %d values, %d MiB of values with aliases expanded, or %d levels); simplify it",
				maxNodes, maxExpanded>>20, maxDepth)
		}
		return
	}
	d.positions[path] = d.pos(n)
	if isNull(n) {
		return // an empty value keeps the default
	}
	if v.CanAddr() {
		if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
			if err := nd.decodeNode(n); err != nil {
				d.problemf(n, path, "%s", err)
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
			applyDefaults(v.Elem())
		}
		d.decode(n, v.Elem(), path, depth+1)
	case reflect.Struct:
		d.decodeStruct(n, v, path, depth)
	case reflect.Map:
		d.decodeMap(n, v, path, depth)
	case reflect.Slice:
		d.decodeSlice(n, v, path, depth)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.problemf(n, path, "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.problemf(n, path, "expected true or false, got %s", describe(n))
			return
		}
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		if n.Kind != yaml.ScalarNode {
			d.problemf(n, path, "expected a whole number, got %s", describe(n))
			return
		}
		i, err := strconv.ParseInt(strings.TrimSpace(n.Value), 0, 64)
		if err != nil || v.OverflowInt(i) {
			if f, ferr := strconv.ParseFloat(n.Value, 64); ferr == nil && f != math.Trunc(f) {
				d.problemf(n, path, "expected a whole number, got %s", n.Value)
				return
			}
			d.problemf(n, path, "expected a whole number, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		if n.Kind != yaml.ScalarNode {
			d.problemf(n, path, "expected a number, got %s", describe(n))
			return
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(n.Value), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.problemf(n, path, "expected a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.problemf(n, path, "cannot hold a value (internal: %s)", v.Kind())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		d.problemf(n, path, "expected a mapping of keys to values, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problemf(k, path, "keys must be plain names, got %s", describe(k))
			continue
		}
		if k.Value == "<<" {
			d.problemf(k, path, "YAML merge keys (<<) are not supported; use environments: for overlays or write the keys out")
			continue
		}
		if seen[k.Value] {
			d.problemf(k, join(path, k.Value), "key %s is written twice in this mapping; keep one", quoteShort(k.Value))
			continue
		}
		seen[k.Value] = true
		idx, ok := fields.index[k.Value]
		if !ok {
			d.problemf(k, join(path, k.Value), "%s", unknownKey(k.Value, path, fields.names))
			continue
		}
		d.decode(val, v.Field(idx), join(path, k.Value), depth+1)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		d.problemf(n, path, "expected a mapping of keys to values, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problemf(k, path, "keys must be plain names, got %s", describe(k))
			continue
		}
		if seen[k.Value] {
			d.problemf(k, join(path, k.Value), "key %s is written twice in this mapping; keep one", quoteShort(k.Value))
			continue
		}
		seen[k.Value] = true
		e := reflect.New(v.Type().Elem()).Elem()
		applyDefaults(e)
		d.decode(val, e, join(path, k.Value), depth+1)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
	}
	v.Set(m)
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.SequenceNode {
		d.problemf(n, path, "expected a list (lines starting with \"- \"), got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		applyDefaults(s.Index(i))
		d.decode(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1)
	}
	v.Set(s)
}

type structFields struct {
	index map[string]int
	names []string
}

var fieldCache sync.Map // reflect.Type → *structFields

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{index: map[string]int{}}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if !sf.IsExported() || name == "-" || name == "" {
			continue
		}
		f.index[name] = i
		f.names = append(f.names, name)
	}
	fieldCache.Store(t, f)
	return f
}

// keyHomes maps every key of the schema to the dotted paths of the mappings it belongs to,
// so a key written at the wrong level can be pointed home.
var keyHomes = sync.OnceValue(func() map[string][]string {
	homes := map[string][]string{}
	var walk func(t reflect.Type, path string, depth int)
	walk = func(t reflect.Type, path string, depth int) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			if t.Kind() == reflect.Map {
				path += ".<name>"
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || depth > 8 {
			return
		}
		f := fieldsOf(t)
		for _, name := range f.names {
			if name == "environments" {
				continue
			}
			homes[name] = append(homes[name], path)
			walk(t.Field(f.index[name]).Type, join(path, name), depth+1)
		}
	}
	walk(reflect.TypeFor[Config](), "", 0)
	return homes
})

// unknownKey explains an unknown key: the nearest valid key, or where the key belongs, or the
// valid keys.
func unknownKey(key, path string, valid []string) string {
	best, bestDist := "", math.MaxInt
	for _, name := range valid {
		if dist := levenshtein.ComputeDistance(strings.ToLower(key), name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	if best != "" && bestDist <= max(2, len(key)/3) {
		return fmt.Sprintf("unknown key %s (did you mean %s?)", quoteShort(key), best)
	}
	if homes := keyHomes()[key]; len(homes) > 0 {
		where := make([]string, len(homes))
		for i, h := range homes {
			if h == "" {
				h = "the top level"
			}
			where[i] = h
		}
		here := path
		if here == "" {
			here = "the top level"
		}
		return fmt.Sprintf("unknown key %s in %s; it belongs under %s", quoteShort(key), here, strings.Join(where, " or "))
	}
	sorted := append([]string(nil), valid...)
	sort.Strings(sorted)
	return fmt.Sprintf("unknown key %s; valid keys here are %s", quoteShort(key), strings.Join(sorted, ", "))
}
