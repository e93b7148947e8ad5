package messaging_test

import (
	"testing"

	"github.com/shoal-sh/shoal/messaging"
	"github.com/shoal-sh/shoal/messaging/messagingtest"
)

func checkPatterns(t *testing.T) {
	messagingtest.CheckPatterns(t, 2000, func(p messaging.Pattern, topic string) bool { return messaging.Match(p.String(), topic) })
}
