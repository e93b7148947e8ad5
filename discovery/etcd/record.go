package etcd

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/shoal-sh/shoal/discovery"
)

// record is the JSON value of an instance's key. The instance's ID is the
// last segment of the key.
type record struct {
	URL      string            `json:"url"`
	Weight   int               `json:"weight,omitempty"`
	Meta     map[string]string `json:"meta,omitempty"`
	Healthy  bool              `json:"healthy"`
	Draining bool              `json:"draining,omitempty"`
}

// maxValue bounds a value that is decoded, against a key someone filled with
// garbage.
const maxValue = 64 << 10

// encode returns the value stored for in.
func encode(in discovery.Instance, healthy, draining bool) []byte {
	b, _ := json.Marshal(record{URL: in.URL.String(), Weight: in.Weight, Meta: in.Meta, Healthy: healthy, Draining: draining})
	return b
}

// decode parses the key and value of an instance. ok is false for an
// unhealthy instance, which is registered but not delivered; err says what
// is wrong with a malformed one.
func decode(dir, key string, value []byte) (in discovery.Instance, ok bool, err error) {
	id, found := strings.CutPrefix(key, dir)
	if !found || id == "" || strings.Contains(id, "/") {
		return in, false, fmt.Errorf("key %q is not %s<instance id>", key, dir)
	}
	if len(value) > maxValue {
		return in, false, fmt.Errorf("key %q: value of %d bytes is larger than %d", key, len(value), maxValue)
	}
	var r record
	if err := json.Unmarshal(value, &r); err != nil {
		return in, false, fmt.Errorf("key %q: value is not shoal's instance JSON ({\"url\": \"http://host:port\", …}): %v", key, err)
	}
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return in, false, fmt.Errorf("key %q: url %q is not http(s)://host:port", key, r.URL)
	}
	if r.Weight < 0 || r.Weight > 1000 {
		return in, false, fmt.Errorf("key %q: weight %d is not between 1 and 1000", key, r.Weight)
	}
	in = discovery.Instance{
		ID:       id,
		URL:      &url.URL{Scheme: u.Scheme, Host: u.Host},
		Weight:   max(r.Weight, 1),
		Meta:     r.Meta,
		Draining: r.Draining,
	}
	return in, r.Healthy, nil
}
