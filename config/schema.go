package config

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/invopop/jsonschema"
)

//go:generate go run ../internal/cmd/genschema

// SchemaID is the $id of the configuration's JSON Schema.
const SchemaID = "https://github.com/shoal-sh/shoal/config/schema.json"

//go:embed schema.json
var schemaJSON []byte

// Schema returns the JSON Schema (draft 2020-12) of shoal.yml, for editors
// (yaml-language-server) and CI checks. Descriptions come from the doc comments of the
// Config types; `go generate ./config` refreshes it.
func Schema() []byte { return schemaJSON }

// GenerateSchema builds the JSON Schema from the Config types and the doc comments of the Go
// files in srcDir, which must be this package's directory.
func GenerateSchema(srcDir string) ([]byte, error) {
	r := &jsonschema.Reflector{
		FieldNameTag:               "yaml",
		RequiredFromJSONSchemaTags: true,
		IgnoredTypes:               []any{Meta{}},
	}
	if err := r.AddGoComments("github.com/shoal-sh/shoal/config", srcDir); err != nil {
		return nil, fmt.Errorf("reading doc comments in %s: %w", srcDir, err)
	}
	s := r.Reflect(&Config{})
	s.ID = SchemaID
	s.Title = "shoal.yml"
	s.Description = "Configuration of a service scaled by shoal (also read as rustform.yml)."
	if def, ok := s.Definitions["Config"]; ok {
		def.Required = []string{"name"}
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
