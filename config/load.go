package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/joho/godotenv"
	"go.yaml.in/yaml/v3"
)

// FileNames are the names Find looks for, in order.
var FileNames = []string{"shoal.yml", "shoal.yaml", "rustform.yml", "rustform.yaml"}

// MaxFileSize is the largest configuration file Load reads.
const MaxFileSize = 4 << 20

// ErrNotFound is returned by Find when no configuration file is in the directory.
var ErrNotFound = errors.New("no shoal.yml or rustform.yml in this directory; pass -f FILE or run `shoal init`")

// Options change how a configuration is loaded.
type Options struct {
	// Env selects an environment overlay by name; "" loads the base configuration.
	Env string
	// LookupEnv reads environment variables for ${VAR} interpolation and the seed's overrides
	// (MESSAGE_QUEUE_TYPE, KAFKA_BROKERS, RABBITMQ_URL, NATS_URL, DATABASE_URL). A .env file
	// beside the configuration fills in variables it does not have. Defaults to os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// NoDotEnv skips the .env file.
	NoDotEnv bool
}

// Find returns the configuration file in dir: shoal.yml, then rustform.yml.
func Find(dir string) (string, error) {
	for _, name := range FileNames {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNotFound
}

// Load reads, interpolates, merges, defaults and validates the configuration at path.
// An invalid configuration returns an *Error listing every problem.
func Load(path string, opts Options) (*Config, error) {
	data, lookup, err := read(path, opts)
	if err != nil {
		return nil, err
	}
	return parse(data, path, opts.Env, lookup)
}

// Parse is Load for a configuration already in memory; file names it in problems, and a
// .env file is not read.
func Parse(data []byte, file string, opts Options) (*Config, error) {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	return parse(data, file, opts.Env, lookup)
}

// LoadAll validates the base configuration at path and every environment overlay merged over
// it, and returns the base. Every problem of every environment is reported once.
func LoadAll(path string, opts Options) (*Config, error) {
	data, lookup, err := read(path, opts)
	if err != nil {
		return nil, err
	}
	return parseAll(data, path, lookup)
}

// ParseAll is LoadAll for a configuration already in memory.
func ParseAll(data []byte, file string, opts Options) (*Config, error) {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	return parseAll(data, file, lookup)
}

func parseAll(data []byte, file string, lookup func(string) (string, bool)) (*Config, error) {
	var all problems
	base, err := parse(data, file, "", lookup)
	collect(&all, err)
	var envs []string
	if base != nil {
		envs = base.Meta.Environments
	} else {
		envs = environmentNames(data)
	}
	for _, env := range envs {
		_, err := parse(data, file, env, lookup)
		collect(&all, err)
	}
	if err := all.err(); err != nil {
		return nil, err
	}
	return base, nil
}

func collect(all *problems, err error) {
	var ce *Error
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			all.add(p)
		}
	} else if err != nil {
		all.add(Problem{Message: err.Error()})
	}
}

func read(path string, opts Options) ([]byte, func(string) (string, bool), error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("config file %s does not exist; pass -f FILE or run `shoal init`", path)
		}
		return nil, nil, fmt.Errorf("cannot read config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read config file %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, nil, fmt.Errorf("config file %s is larger than %d MiB; is it the right file?", path, MaxFileSize>>20)
	}
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if !opts.NoDotEnv {
		dotenv := filepath.Join(filepath.Dir(path), ".env")
		vars, err := readDotEnv(dotenv)
		if err != nil {
			return nil, nil, err
		}
		if len(vars) > 0 {
			env := lookup
			lookup = func(k string) (string, bool) {
				if v, ok := env(k); ok {
					return v, true
				}
				v, ok := vars[k]
				return v, ok
			}
		}
	}
	return data, lookup, nil
}

func readDotEnv(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	vars, err := godotenv.UnmarshalBytes(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v; write one NAME=value per line", path, err)
	}
	return vars, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse is the whole pipeline for one environment.
func parse(data []byte, file, env string, lookup func(string) (string, bool)) (*Config, error) {
	var ps problems
	fail := func(line int, msg string) (*Config, error) {
		ps.add(Problem{Pos: Pos{File: file, Line: line, Column: 1}, Message: msg})
		return nil, ps.err()
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return fail(1, "the file is empty; run `shoal init` for a commented starter")
		}
		msg := err.Error()
		line := 1
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		msg = strings.TrimPrefix(msg, "yaml: ")
		return fail(line, "this is not valid YAML: "+msg)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if line == 0 {
			line = 1
		}
		return fail(line, "the file holds more than one YAML document (---); keep one")
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return fail(1, "the file is empty; run `shoal init` for a commented starter")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fail(root.Line, "the top level must be a mapping of keys such as name: and scaling:")
	}

	c := &Config{}
	c.Meta = Meta{File: file, Dir: filepath.Dir(file), Env: env, Templates: map[string]string{},
		positions: map[string]Pos{"": {File: file, Line: root.Line, Column: root.Column}}}

	// Environments: pull them out of the base, then merge the selected one over it.
	envs := takeKey(root, "environments")
	if envs != nil {
		if envs.Kind != yaml.MappingNode && !isNull(envs) {
			ps.add(Problem{Pos: Pos{file, envs.Line, envs.Column}, Path: "environments",
				Message: "expected a mapping of environment names to overlays"})
		} else {
			for i := 0; i+1 < len(envs.Content); i += 2 {
				c.Meta.Environments = append(c.Meta.Environments, envs.Content[i].Value)
			}
		}
	}
	var overlayAt map[Pos]bool // where the overlay's values are written
	if env != "" {
		overlay := findKey(envs, env)
		switch {
		case overlay == nil:
			names := "none are defined"
			if len(c.Meta.Environments) > 0 {
				names = "defined: " + strings.Join(c.Meta.Environments, ", ")
			}
			ps.add(Problem{Pos: Pos{file, root.Line, root.Column}, Path: "environments",
				Message: fmt.Sprintf("environment %q is not defined (%s)", env, names)})
		case overlay.Kind == yaml.MappingNode:
			overlayAt = positionsOf(overlay, file)
			merge(root, overlay)
		case !isNull(overlay):
			ps.add(Problem{Pos: Pos{file, overlay.Line, overlay.Column}, Path: "environments." + env,
				Message: "an environment overlay must be a mapping, such as scaling: {instances: {min_instances: 3}}"})
		}
	}

	ip := &interpolator{file: file, lookup: lookup, templates: c.Meta.Templates, problems: &ps,
		seen: map[*yaml.Node]bool{}}
	ip.walk(root, "")

	v := reflect.ValueOf(c).Elem()
	applyDefaults(v)
	d := &decoder{file: file, problems: &ps, positions: c.Meta.positions}
	d.decode(root, v, "", 0)

	applyOverrides(c, lookup)
	c.derive()

	unset := map[string]bool{}
	for _, u := range ip.unresolved {
		if Inactive(c, u.path) {
			continue
		}
		unset[u.path] = true
		ps.add(Problem{Pos: u.pos, Path: u.path, Message: fmt.Sprintf(
			"${%s} is not set; export %s, add it to .env beside the config, or give a default with ${%s:-value}",
			u.name, u.name, u.name)})
	}
	c.validate(func(path, msg string) {
		if !unset[path] { // the missing variable is the problem, not the empty value
			ps.add(Problem{Pos: c.Meta.Position(path), Path: path, Message: msg})
		}
	})
	if overlayAt != nil {
		// Name the environment in the path of a problem written in its overlay.
		for i, p := range ps.list {
			if overlayAt[p.Pos] {
				ps.list[i].Path = join("environments."+env, p.Path)
			}
		}
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// positionsOf returns where every node under n is written.
func positionsOf(n *yaml.Node, file string) map[Pos]bool {
	at := map[Pos]bool{}
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		if n == nil || depth > maxDepth || len(at) > maxNodes {
			return
		}
		at[Pos{File: file, Line: n.Line, Column: n.Column}] = true
		for _, c := range n.Content {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return at
}

// environmentNames lists the environments of a document that failed to load, best effort.
func environmentNames(data []byte) []string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	envs := findKey(doc.Content[0], "environments")
	if envs == nil || envs.Kind != yaml.MappingNode {
		return nil
	}
	var names []string
	for i := 0; i+1 < len(envs.Content); i += 2 {
		names = append(names, envs.Content[i].Value)
	}
	return names
}

func findKey(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			for v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			return v
		}
	}
	return nil
}

// takeKey removes key from mapping m and returns its value.
func takeKey(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			m.Content = append(m.Content[:i:i], m.Content[i+2:]...)
			for v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			return v
		}
	}
	return nil
}

// merge deep-merges mapping src over mapping dst: mappings merge key by key, anything else
// replaces. Positions of merged values stay those of src, so problems point into the overlay.
func merge(dst, src *yaml.Node) {
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		replaced := false
		for j := 0; j+1 < len(dst.Content); j += 2 {
			if dst.Content[j].Value != k.Value {
				continue
			}
			cur := dst.Content[j+1]
			for cur.Kind == yaml.AliasNode && cur.Alias != nil {
				cur = cur.Alias
			}
			if cur.Kind == yaml.MappingNode && v.Kind == yaml.MappingNode {
				// Copy before merging, so a mapping shared through an anchor is not changed elsewhere.
				cp := *cur
				cp.Content = append([]*yaml.Node(nil), cur.Content...)
				dst.Content[j+1] = &cp
				merge(&cp, v)
			} else {
				dst.Content[j+1] = v
			}
			replaced = true
			break
		}
		if !replaced {
			dst.Content = append(dst.Content, k, v)
		}
	}
}

// Overrides maps the seed's environment variables onto the paths they override.
var Overrides = []struct{ Var, Path string }{
	{"MESSAGE_QUEUE_TYPE", "messaging.type"},
	{"KAFKA_BROKERS", "messaging.kafka.brokers"},
	{"RABBITMQ_URL", "messaging.rabbitmq.url"},
	{"NATS_URL", "messaging.nats.url"},
	{"DATABASE_URL", "database.url"},
}

func applyOverrides(c *Config, lookup func(string) (string, bool)) {
	for _, o := range Overrides {
		v, ok := lookup(o.Var)
		if !ok || strings.TrimSpace(v) == "" {
			continue
		}
		v = strings.TrimSpace(v)
		switch o.Var {
		case "MESSAGE_QUEUE_TYPE":
			c.Messaging.Type = strings.ToLower(v)
		case "KAFKA_BROKERS":
			var brokers []string
			for _, b := range strings.Split(v, ",") {
				if b = strings.TrimSpace(b); b != "" {
					brokers = append(brokers, b)
				}
			}
			c.Messaging.Kafka.Brokers = brokers
		case "RABBITMQ_URL":
			c.Messaging.RabbitMQ.URL = v
		case "NATS_URL":
			c.Messaging.NATS.URL = v
		case "DATABASE_URL":
			c.Database.URL = v
			if t := databaseTypeOf(v); t != "" {
				c.Database.Type = t
			}
		}
		c.Meta.positions[o.Path] = Pos{File: "environment variable " + o.Var}
	}
}
