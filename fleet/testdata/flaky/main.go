// Command flaky is a test service for the fleet's liveness handling: it serves /ready and
// /live on PORT, and after FLAKY_LIVE_OK liveness probes /live answers 500 forever, as a
// wedged process would. While the file FLAKY_NOT_READY_FILE exists, /ready answers 503, as
// a service waiting for a dependency would; /work?ms=N spins the CPU for N milliseconds.
package main

import (
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

func main() {
	ok, _ := strconv.Atoi(os.Getenv("FLAKY_LIVE_OK"))
	var probes atomic.Int64
	notReady := os.Getenv("FLAKY_NOT_READY_FILE")
	http.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(notReady); notReady != "" && err == nil {
			http.Error(w, "waiting", http.StatusServiceUnavailable)
		}
	})
	http.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		for end := time.Now().Add(time.Duration(ms) * time.Millisecond); time.Now().Before(end); {
		}
	})
	http.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {})
	http.HandleFunc("/live", func(w http.ResponseWriter, r *http.Request) {
		if probes.Add(1) > int64(ok) {
			http.Error(w, "wedged", http.StatusInternalServerError)
		}
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("flaky")) })
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
