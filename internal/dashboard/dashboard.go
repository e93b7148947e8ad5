// Package dashboard is the admin server's web page: the fleet's instances and their health,
// request rate and p95 latency over time, recent scaling events, and scale / restart buttons
// that call the admin API with the token the user pastes in. Everything is embedded in the
// binary; the page loads nothing from elsewhere.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Handler serves the dashboard. Mount it at "/"; the page calls the admin API under /v1/.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// The embedded tree is fixed at build time; fs.Sub cannot fail on it.
		panic(err)
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		// The page is served at / and its assets under /ui/.
		if rest, ok := strings.CutPrefix(r.URL.Path, "/ui"); ok {
			r2 := *r
			u := *r.URL
			u.Path = rest
			r2.URL = &u
			r = &r2
		}
		files.ServeHTTP(w, r)
	})
}
