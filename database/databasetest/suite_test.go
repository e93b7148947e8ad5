package databasetest_test

import (
	"testing"

	"github.com/shoal-sh/shoal/database/databasetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	for _, b := range databasetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			databasetest.Run(t, b.NewURL)
		})
	}
}
