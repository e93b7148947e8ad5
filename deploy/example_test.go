package deploy_test

import (
	"fmt"
	"log"

	"github.com/shoal-sh/shoal/config"
	"github.com/shoal-sh/shoal/deploy"
)

// Generate the Kubernetes objects of a service whose configuration reads a token from the
// environment: the Deployment refers to the Secret, and the token's value is in no file.
func ExampleGenerate() {
	yml := []byte(`
name: billing
scaling:
  service_discovery:
    namespace: payments
  instances:
    min_instances: 2
app:
  env:
    STRIPE_TOKEN: "${STRIPE_TOKEN}"
deploy:
  image: ghcr.io/acme/billing:3.1.0
`)
	c, err := config.Parse(yml, "shoal.yml", config.Options{
		LookupEnv: func(k string) (string, bool) { return "sk_live_do_not_print", k == "STRIPE_TOKEN" },
	})
	if err != nil {
		log.Fatal(err)
	}
	out, err := deploy.Generate(c, deploy.Kubernetes, deploy.Options{})
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range out.Files {
		fmt.Println(f.Path)
	}
	fmt.Println(out.Notes[0])
	// Output:
	// deployment.yaml
	// service.yaml
	// hpa.yaml
	// pdb.yaml
	// servicemonitor.yaml
	// create Secret billing-secrets in namespace payments (shoal never writes secret values):
	//   kubectl -n payments create secret generic billing-secrets --from-literal=STRIPE_TOKEN=...
}
