package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"

	"sigs.k8s.io/yaml"
)

// toTree turns a typed object into the generic tree its JSON encoding describes: the API
// types' json tags and omitempty rules decide what is written. Numbers stay json.Number.
func toTree(obj any) (any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	if m, ok := tree.(map[string]any); ok {
		// A generated object has no status; the API types would write an empty one.
		delete(m, "status")
	}
	return tree, nil
}

// marshalTree renders a tree as YAML with sorted keys, so equal trees give equal bytes.
func marshalTree(tree any) ([]byte, error) {
	return yaml.Marshal(tree)
}

// objectFile renders one object into a file opened by the generated-file header.
func (s *spec) objectFile(path string, obj any) (File, error) {
	tree, err := toTree(obj)
	if err != nil {
		return File{}, fmt.Errorf("encoding %s: %w", path, err)
	}
	return s.treeFile(path, tree, "")
}

// treeFile renders a tree into a file: the header, extra comment lines, then the YAML.
func (s *spec) treeFile(path string, tree any, comment string) (File, error) {
	body, err := marshalTree(tree)
	if err != nil {
		return File{}, fmt.Errorf("encoding %s: %w", path, err)
	}
	var b bytes.Buffer
	b.WriteString(s.header("# "))
	b.WriteString(comment)
	b.Write(body)
	return File{Path: path, Data: b.Bytes()}, nil
}
