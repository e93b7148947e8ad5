package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// errorBody is the JSON a client gets when the proxy itself answers.
type errorBody struct {
	Error    string `json:"error"`
	Message  string `json:"message"`
	Instance string `json:"instance,omitempty"`
	Status   int    `json:"status"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeErrorBody(w, errorBody{Error: code, Message: msg, Status: status})
}

func writeErrorBody(w http.ResponseWriter, b errorBody) {
	data := errorJSON(b)
	h := w.Header()
	errorHeaders(h, b.Status, b.Error)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(b.Status)
	_, _ = w.Write(data)
}

// errorJSON is the body of an error answer.
func errorJSON(b errorBody) []byte {
	data, _ := json.Marshal(b)
	return append(data, '\n')
}

// errorHeaders are the headers of an error answer.
func errorHeaders(h http.Header, status int, code string) {
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Shoal-Error", code)
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
}

// errorHandler answers a request the proxy could not complete with a JSON error saying why.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client is gone; there is nobody to tell.
		w.WriteHeader(499)
		return
	}
	var pe *proxyError
	if !errors.As(err, &pe) {
		pe = &proxyError{status: http.StatusBadGateway, code: "upstream_error", msg: "the instance's answer could not be relayed: " + err.Error()}
	}
	if pe.status >= 500 {
		p.log.Warn("proxy error", "status", pe.status, "error", pe.code, "instance", pe.instance, "method", r.Method,
			"path", r.URL.Path, "detail", pe.msg)
	}
	writeErrorBody(w, errorBody{Error: pe.code, Message: pe.msg, Instance: pe.instance, Status: pe.status})
}

// quoteShort quotes an outside value for an error message, at most its first 64 bytes: a
// message must say what was wrong without echoing whatever a client sent.
func quoteShort(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:max]) + "…"
}
