// Command genschema writes config/schema.json from the Config types; `go generate ./config` runs it.
package main

import (
	"fmt"
	"os"

	"github.com/shoal-sh/shoal/config"
)

func main() {
	b, err := config.GenerateSchema(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "genschema:", err)
		os.Exit(1)
	}
	if err := os.WriteFile("schema.json", b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "genschema:", err)
		os.Exit(1)
	}
}
