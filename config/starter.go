package config

import (
	"bytes"
	_ "embed"
	"regexp"
	"strings"
)

//go:embed starter.yml
var starter []byte

var nonLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// ServiceName turns any string (a directory name, say) into a valid service name: a DNS label.
func ServiceName(s string) string {
	s = nonLabel.ReplaceAllString(strings.ToLower(s), "-")
	s = strings.Trim(s, "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	if s == "" {
		return "my-service"
	}
	return s
}

// Starter returns a commented starter shoal.yml for a service called name.
func Starter(name string) []byte {
	return bytes.ReplaceAll(starter, []byte("{{NAME}}"), []byte(ServiceName(name)))
}
