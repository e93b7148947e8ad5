// Command shoal runs, scales and deploys a service from one YAML file. See `shoal --help`.
package main

import (
	"os"

	"github.com/shoal-sh/shoal/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
