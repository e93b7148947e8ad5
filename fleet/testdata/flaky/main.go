// Command flaky is a test service for the fleet's liveness handling: it serves /ready and
// /live on PORT, and after FLAKY_LIVE_OK liveness probes /live answers 500 forever, as a
// wedged process would.
package main

import (
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
)

func main() {
	ok, _ := strconv.Atoi(os.Getenv("FLAKY_LIVE_OK"))
	var probes atomic.Int64
	http.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {})
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
