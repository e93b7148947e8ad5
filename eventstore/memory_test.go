package eventstore_test

import (
	"testing"

	"github.com/shoal-sh/shoal/eventstore"
	"github.com/shoal-sh/shoal/eventstore/eventstoretest"
)

func TestMemoryConformance(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstoretest.Harness {
		var mem *eventstore.Memory
		return eventstoretest.Harness{Open: func(t testing.TB, c eventstore.Clock) eventstore.Store {
			if mem == nil {
				mem = eventstore.NewMemory(eventstore.MemoryOptions{Clock: c})
			}
			return mem
		}}
	})
}
