// Command backend is the upstream of bench/proxy.sh: a small, fast HTTP/1.1 server that answers
// every request as a typical JSON API would, so a proxy benchmark measures the proxy rather than
// the application behind it.
//
//	go run ./bench/backend -addr 127.0.0.1:18091
//
// GET / answers a fixed 64-byte JSON body and names the backend in an X-Backend header (the
// script checks with it that a proxy spreads requests over every backend); GET /health answers
// 200 "ok". Keep-alive is on.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// body is 64 bytes, the size of a small JSON answer.
var body = []byte(`{"id":12345,"name":"shoal","status":"ok","items":[1,2,3,4,5,6]}` + "\n")

var bodyLen = strconv.Itoa(len(body))

func main() {
	addr := flag.String("addr", "127.0.0.1:18091", "address to listen on")
	flag.Parse()

	self := []string{*addr}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"text/plain"}
		h["Content-Length"] = []string{"3"}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{bodyLen}
		h["X-Backend"] = self
		_, _ = w.Write(body)
	})
	srv := &http.Server{
		Addr:              *addr,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	srv.SetKeepAlivesEnabled(true)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "backend listening on %s (%d-byte body)\n", *addr, len(body))
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("backend: %v", err)
	}
}
