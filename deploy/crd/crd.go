// Package crd holds minimal typed structs for the custom resources `shoal generate` writes:
// Prometheus Operator's ServiceMonitor, KEDA's ScaledObject, and Istio's VirtualService and
// DestinationRule.
//
// The structs are written by hand rather than imported from the projects' Go modules, which pull
// in client-go, controller-runtime and Istio's protobuf stack for four objects. Their JSON tags
// mirror the field names of the CRDs' OpenAPI schemas (monitoring.coreos.com/v1,
// keda.sh/v1alpha1, networking.istio.io/v1), and only the fields shoal sets are declared: an
// object decoded strictly into them fails on any field they lack, which is how the tests prove
// that the generator writes nothing else.
package crd

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// API versions of the custom resources.
const (
	MonitoringAPIVersion = "monitoring.coreos.com/v1"
	KEDAAPIVersion       = "keda.sh/v1alpha1"
	IstioAPIVersion      = "networking.istio.io/v1"
)

// ServiceMonitor tells the Prometheus Operator to scrape the endpoints of the Services its
// selector matches.
type ServiceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ServiceMonitorSpec `json:"spec"`
}

// ServiceMonitorSpec selects Services and says how to scrape them.
type ServiceMonitorSpec struct {
	// Selector matches the labels of the Services to scrape.
	Selector metav1.LabelSelector `json:"selector"`
	// NamespaceSelector limits the namespaces the Services are looked up in.
	NamespaceSelector *NamespaceSelector `json:"namespaceSelector,omitempty"`
	// Endpoints are the Service ports to scrape.
	Endpoints []Endpoint `json:"endpoints"`
}

// NamespaceSelector names namespaces.
type NamespaceSelector struct {
	MatchNames []string `json:"matchNames,omitempty"`
}

// Endpoint is one scraped Service port.
type Endpoint struct {
	// Port is the name of the Service port.
	Port string `json:"port,omitempty"`
	// Path of the metrics, e.g. "/metrics".
	Path string `json:"path,omitempty"`
	// Interval between scrapes, in Prometheus duration syntax ("30s").
	Interval string `json:"interval,omitempty"`
}

// ScaledObject makes KEDA run a HorizontalPodAutoscaler for a workload, fed by triggers such as
// Prometheus queries.
type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ScaledObjectSpec `json:"spec"`
}

// ScaledObjectSpec is what a ScaledObject scales and on what.
type ScaledObjectSpec struct {
	// ScaleTargetRef is the workload scaled.
	ScaleTargetRef ScaleTarget `json:"scaleTargetRef"`
	// PollingInterval is how often, in seconds, KEDA evaluates the triggers.
	PollingInterval *int32 `json:"pollingInterval,omitempty"`
	// MinReplicaCount is the fewest replicas.
	MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
	// MaxReplicaCount is the most replicas.
	MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
	// Advanced configures the HorizontalPodAutoscaler KEDA creates.
	Advanced *AdvancedConfig `json:"advanced,omitempty"`
	// Triggers are the metrics scaled on; the HPA follows whichever asks for most replicas.
	Triggers []ScaleTrigger `json:"triggers"`
}

// ScaleTarget names the scaled workload.
type ScaleTarget struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name"`
}

// AdvancedConfig holds KEDA's advanced options.
type AdvancedConfig struct {
	HorizontalPodAutoscalerConfig *HorizontalPodAutoscalerConfig `json:"horizontalPodAutoscalerConfig,omitempty"`
}

// HorizontalPodAutoscalerConfig is passed on to the HPA KEDA creates.
type HorizontalPodAutoscalerConfig struct {
	// Behavior is the HPA's scaling behaviour (stabilisation windows and rate policies).
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
}

// ScaleTrigger is one metric KEDA scales on.
type ScaleTrigger struct {
	// Type of scaler: "cpu", "memory", "prometheus", ...
	Type string `json:"type"`
	// Name of the trigger, unique within the ScaledObject.
	Name string `json:"name,omitempty"`
	// Metadata configures the scaler (for prometheus: serverAddress, query, threshold).
	Metadata map[string]string `json:"metadata"`
	// MetricType is how the HPA compares the metric with its target: Utilization (cpu, memory),
	// AverageValue (divided by the replica count) or Value (taken as is).
	MetricType autoscalingv2.MetricTargetType `json:"metricType,omitempty"`
}

// VirtualService routes requests for a host.
type VirtualService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              VirtualServiceSpec `json:"spec"`
}

// VirtualServiceSpec lists the hosts routed and the HTTP routes, first match wins.
type VirtualServiceSpec struct {
	Hosts []string    `json:"hosts"`
	HTTP  []HTTPRoute `json:"http,omitempty"`
}

// HTTPRoute is one HTTP route: what it matches, where it goes, and its retries and timeout.
type HTTPRoute struct {
	Name    string                 `json:"name,omitempty"`
	Match   []HTTPMatchRequest     `json:"match,omitempty"`
	Route   []HTTPRouteDestination `json:"route"`
	Timeout string                 `json:"timeout,omitempty"`
	Retries *HTTPRetry             `json:"retries,omitempty"`
}

// HTTPMatchRequest matches requests; its conditions are ANDed, the entries of a route's match
// list are ORed.
type HTTPMatchRequest struct {
	Name    string                 `json:"name,omitempty"`
	Method  *StringMatch           `json:"method,omitempty"`
	Headers map[string]StringMatch `json:"headers,omitempty"`
}

// StringMatch matches a string exactly, by prefix or by an RE2 regular expression.
type StringMatch struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Regex  string `json:"regex,omitempty"`
}

// HTTPRouteDestination is a destination and the share of the route's requests it receives.
type HTTPRouteDestination struct {
	Destination Destination `json:"destination"`
	// Weight in percent; omitted when the route has a single destination.
	Weight int32 `json:"weight,omitempty"`
}

// Destination is a service, optionally one of its DestinationRule subsets, and a port.
type Destination struct {
	Host   string        `json:"host"`
	Subset string        `json:"subset,omitempty"`
	Port   *PortSelector `json:"port,omitempty"`
}

// PortSelector is a port number.
type PortSelector struct {
	Number uint32 `json:"number"`
}

// HTTPRetry is a route's retry policy.
type HTTPRetry struct {
	// Attempts is the number of retries, not counting the first try; 0 turns retries off.
	Attempts int32 `json:"attempts"`
	// PerTryTimeout bounds each try.
	PerTryTimeout string `json:"perTryTimeout,omitempty"`
	// RetryOn lists Envoy's retry conditions, comma-separated.
	RetryOn string `json:"retryOn,omitempty"`
}

// DestinationRule is the traffic policy of a host after routing: load balancing, outlier
// detection, connection pool and subsets.
type DestinationRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              DestinationRuleSpec `json:"spec"`
}

// DestinationRuleSpec is a DestinationRule's host, policy and subsets.
type DestinationRuleSpec struct {
	Host          string         `json:"host"`
	TrafficPolicy *TrafficPolicy `json:"trafficPolicy,omitempty"`
	Subsets       []Subset       `json:"subsets,omitempty"`
}

// TrafficPolicy is load balancing, connection pool and outlier detection.
type TrafficPolicy struct {
	LoadBalancer     *LoadBalancerSettings   `json:"loadBalancer,omitempty"`
	ConnectionPool   *ConnectionPoolSettings `json:"connectionPool,omitempty"`
	OutlierDetection *OutlierDetection       `json:"outlierDetection,omitempty"`
}

// Simple load-balancing algorithms of Istio.
const (
	RoundRobin   = "ROUND_ROBIN"
	LeastRequest = "LEAST_REQUEST"
	Random       = "RANDOM"
)

// LoadBalancerSettings is either a simple algorithm or a consistent hash.
type LoadBalancerSettings struct {
	Simple         string            `json:"simple,omitempty"`
	ConsistentHash *ConsistentHashLB `json:"consistentHash,omitempty"`
}

// ConsistentHashLB hashes requests onto hosts by one key: a header, a cookie or the source IP.
type ConsistentHashLB struct {
	HTTPHeaderName string      `json:"httpHeaderName,omitempty"`
	HTTPCookie     *HTTPCookie `json:"httpCookie,omitempty"`
	UseSourceIP    bool        `json:"useSourceIp,omitempty"`
	// Maglev selects Envoy's Maglev table instead of the default ring hash.
	Maglev *MagLev `json:"maglev,omitempty"`
}

// HTTPCookie is the cookie hashed on; Envoy sets it when absent.
type HTTPCookie struct {
	Name string `json:"name"`
	Path string `json:"path,omitempty"`
	// TTL of the generated cookie; "0s" makes it a session cookie.
	TTL string `json:"ttl"`
}

// MagLev configures the Maglev table.
type MagLev struct {
	// TableSize is a prime; Envoy's default is 65537.
	TableSize uint64 `json:"tableSize,omitempty"`
}

// ConnectionPoolSettings are per-host connection settings.
type ConnectionPoolSettings struct {
	HTTP *HTTPSettings `json:"http,omitempty"`
}

// HTTPSettings are per-host HTTP settings.
type HTTPSettings struct {
	// H2UpgradePolicy "UPGRADE" speaks HTTP/2 to the hosts.
	H2UpgradePolicy string `json:"h2UpgradePolicy,omitempty"`
}

// OutlierDetection ejects hosts that fail consecutively.
type OutlierDetection struct {
	// Consecutive5xxErrors ejects on any 5xx; 0 turns that off.
	Consecutive5xxErrors *uint32 `json:"consecutive5xxErrors,omitempty"`
	// ConsecutiveGatewayErrors ejects on 502, 503, 504 and connection failures.
	ConsecutiveGatewayErrors *uint32 `json:"consecutiveGatewayErrors,omitempty"`
	// Interval between ejection sweeps.
	Interval string `json:"interval,omitempty"`
	// BaseEjectionTime is how long a first ejection lasts; Envoy multiplies it by the number
	// of ejections.
	BaseEjectionTime string `json:"baseEjectionTime,omitempty"`
	// MaxEjectionPercent caps the share of hosts ejected at once.
	MaxEjectionPercent int32 `json:"maxEjectionPercent,omitempty"`
}

// Subset is a named group of a host's endpoints, selected by labels.
type Subset struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}
