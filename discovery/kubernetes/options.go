package kubernetes

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shoal-sh/shoal/config"
)

// Options configure a [Provider]. [FromConfig] fills them from the seed.
type Options struct {
	// Namespace of the Service. Defaults to "default".
	Namespace string
	// Service whose EndpointSlices are watched. Required.
	Service string
	// PortName is the name of the slice port instances serve on. Defaults to "http".
	PortName string
	// Port is used when no slice port is named PortName: the port with this
	// number. 0 for none.
	Port int
	// Scheme of the instances' URLs, "http" or "https". Defaults to "http".
	Scheme string
	// Kubeconfig file used when not running in a cluster. Defaults to
	// $KUBECONFIG, then ~/.kube/config.
	Kubeconfig string
	// Client talks to the API server; when nil, New connects with the
	// in-cluster configuration or else Kubeconfig. Tests give client-go's
	// fake clientset.
	Client k8s.Interface
	// Logger receives warnings (a slice without the port). Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// FromConfig returns the options of the seed's service_discovery block.
func FromConfig(sd config.ServiceDiscovery) Options {
	return Options{
		Namespace:  sd.Namespace,
		Service:    sd.ServiceName,
		PortName:   sd.Kubernetes.PortName,
		Port:       sd.Port,
		Kubeconfig: sd.Kubernetes.Kubeconfig,
	}
}

func (o *Options) setDefaults() {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.PortName == "" {
		o.PortName = "http"
	}
	if o.Scheme == "" {
		o.Scheme = "http"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports every problem of o.
func (o Options) Validate() error {
	o.setDefaults()
	var errs []error
	if o.Service == "" {
		errs = append(errs, errors.New("Service: is required (service_discovery.service_name)"))
	}
	if o.Port < 0 || o.Port > 65535 {
		errs = append(errs, fmt.Errorf("Port: %d is not 0 or 1-65535", o.Port))
	}
	if o.Scheme != "http" && o.Scheme != "https" {
		errs = append(errs, fmt.Errorf("Scheme: %q is not \"http\" or \"https\"", o.Scheme))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kubernetes discovery options: %w", err)
	}
	return nil
}

// connect returns a client from the in-cluster configuration, else the
// kubeconfig file.
func connect(o Options) (k8s.Interface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		path := o.Kubeconfig
		if path == "" {
			path = os.Getenv("KUBECONFIG")
		}
		if path == "" {
			if home, herr := os.UserHomeDir(); herr == nil {
				path = filepath.Join(home, ".kube", "config")
			}
		}
		if _, serr := os.Stat(path); path == "" || serr != nil {
			return nil, fmt.Errorf("kubernetes discovery: not in a cluster (%v) and no kubeconfig at %q; set scaling.service_discovery.kubernetes.kubeconfig", err, path)
		}
		if cfg, err = clientcmd.BuildConfigFromFlags("", path); err != nil {
			return nil, fmt.Errorf("kubernetes discovery: reading %s: %w", path, err)
		}
	}
	return k8s.NewForConfig(cfg)
}
