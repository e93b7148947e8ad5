package etcd

import (
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary keys and values to the decoder of instance keys:
// it must never panic, and what it accepts must be a usable instance.
func FuzzDecode(f *testing.F) {
	dir := "/shoal/services/api/"
	f.Add(dir+"api-1", `{"url": "http://10.0.0.1:8080", "weight": 3, "healthy": true}`)
	f.Add(dir+"api-2", `{"url": "https://[fd00::1]:443", "meta": {"v": "2"}, "healthy": true, "draining": true}`)
	f.Add(dir+"x", `{"url": "ftp://h:1", "healthy": true}`)
	f.Add(dir+"y/z", `{}`)
	f.Add(dir+"w", `{"url": "http://u:p@h:1/p?q#f", "weight": -1}`)
	f.Add("/elsewhere/k", `null`)
	f.Fuzz(func(t *testing.T, key, value string) {
		in, _, err := decode(dir, key, []byte(value))
		if err != nil {
			if !strings.Contains(err.Error(), "key ") {
				t.Errorf("error does not name the key: %v", err)
			}
			return
		}
		if in.ID == "" || strings.Contains(in.ID, "/") || in.URL == nil || in.URL.Host == "" ||
			(in.URL.Scheme != "http" && in.URL.Scheme != "https") || in.Weight < 1 || in.Weight > 1000 {
			t.Errorf("accepted an unusable instance %+v from %q = %q", in, key, value)
		}
	})
}
