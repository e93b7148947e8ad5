package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerate_BrokerURLFromSecret: a broker URL never reaches the manifests as a value; the
// instances read NATS_URL / RABBITMQ_URL / KAFKA_BROKERS from the Secret — required when the
// file leaves the URL at its default (localhost, or shoal up's embedded NATS), optional when
// the file writes one, and the same reference as before when the file uses ${VAR}.
func TestGenerate_BrokerURLFromSecret(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yml  string
		vars       map[string]string
		envVar     string
		optional   bool
		noBrokerOK bool
	}{
		{"nats default", "messaging:\n  type: nats\n", nil, "NATS_URL", false, false},
		{"rabbitmq written", "messaging:\n  type: rabbitmq\n  rabbitmq:\n    url: amqp://rabbit.prod:5672/\n", nil, "RABBITMQ_URL", true, false},
		{"rabbitmq ${VAR}", "messaging:\n  type: rabbitmq\n  rabbitmq:\n    url: ${RABBITMQ_URL}\n", map[string]string{"RABBITMQ_URL": "amqp://u:pw-91ab@r:5672/"}, "RABBITMQ_URL", false, false},
		{"kafka default", "messaging:\n  type: kafka\n", nil, "KAFKA_BROKERS", false, false},
		{"memory", "", nil, "", false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "shoal.yml")
			os.WriteFile(path, []byte("name: shop\napp:\n  command: [\"./shop\"]\n"+c.yml), 0o600)
			out := generate(t, fixture{name: c.name, file: path, vars: c.vars}, "kubernetes")
			var deployment string
			for _, f := range out.Files {
				if strings.HasSuffix(f.Path, "deployment.yaml") {
					deployment = string(f.Data)
				}
				for _, v := range c.vars {
					if strings.Contains(string(f.Data), v) {
						t.Errorf("%s holds the secret value %q", f.Path, v)
					}
				}
			}
			if c.noBrokerOK {
				for _, v := range []string{"NATS_URL", "RABBITMQ_URL", "KAFKA_BROKERS"} {
					if strings.Contains(deployment, v) {
						t.Errorf("memory messaging, yet the deployment reads %s", v)
					}
				}
				return
			}
			i := strings.Index(deployment, "name: "+c.envVar+"\n")
			if i < 0 {
				t.Fatalf("the deployment does not read %s:\n%s", c.envVar, deployment)
			}
			block := deployment[i:min(i+200, len(deployment))]
			if !strings.Contains(block, "secretKeyRef:") || !strings.Contains(block, "key: "+c.envVar) {
				t.Errorf("%s is not a Secret reference:\n%s", c.envVar, block)
			}
			end := len(block)
			for _, stop := range []string{"- name:", "image:"} {
				if j := strings.Index(block[1:], stop); j >= 0 && j+1 < end {
					end = j + 1
				}
			}
			if got := strings.Contains(block[:end], "optional: true"); got != c.optional {
				t.Errorf("%s optional = %v, want %v:\n%s", c.envVar, got, c.optional, block)
			}
		})
	}
}
