package deploy

import (
	"slices"

	"github.com/shoal-sh/shoal/config"
)

// brokerSecret adds the broker's URL variable (NATS_URL, RABBITMQ_URL, KAFKA_BROKERS) to the
// Secret's variables when messaging.type names a broker whose URL is not already a ${VAR}
// or an override. In a cluster neither the default (localhost) nor `shoal up`'s embedded
// NATS server exists, so the URL must come from the Secret: required when the file leaves
// the URL at its default, optional when the file writes one (the file's value then holds).
func brokerSecret(c *config.Config, byName map[string]*secretVar) {
	var name, path string
	switch c.Messaging.Type {
	case config.MessagingNATS:
		name, path = "NATS_URL", "messaging.nats.url"
	case config.MessagingRabbitMQ:
		name, path = "RABBITMQ_URL", "messaging.rabbitmq.url"
	case config.MessagingKafka:
		name, path = "KAFKA_BROKERS", "messaging.kafka.brokers"
	default:
		return
	}
	if _, ok := byName[name]; ok {
		return
	}
	for p := range c.Meta.Templates {
		if p == path || len(p) > len(path) && p[:len(path)+1] == path+"[" {
			return // a ${VAR} of the file: already a Secret reference
		}
	}
	parent := path[:len(path)-len(".url")]
	if name == "KAFKA_BROKERS" {
		parent = "messaging.kafka"
	}
	written := c.Meta.Position(path) != c.Meta.Position(parent)
	byName[name] = &secretVar{Name: name, Optional: written, Paths: slices.Clone([]string{path})}
}
