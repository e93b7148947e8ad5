package mongo_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

var (
	osMkdirTemp = func() (string, error) { return os.MkdirTemp("", "shoal-ferretdb-") }
	osRemoveAll = func(dir string) { os.RemoveAll(dir) }
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stopFerret != nil {
		stopFerret()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
