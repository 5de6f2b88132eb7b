package proxy

import (
	"bufio"
	"net/http"
	"strings"
)

// writeRequest writes the head of a request without body (the lean path's
// requests) to w, as http.Request.Write would, without its allocations:
// the request line, Host, User-Agent (omitted when the header is present
// and empty; ReverseProxy sets it so), Content-Length: 0 for methods that
// expect a body, Connection: close when req.Close, then the other headers.
// Requests it does not cover (an opaque URL, an IPv6 zone in the host) are
// written by http.Request.Write.
func writeRequest(w *bufio.Writer, req *http.Request) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if req.URL.Opaque != "" || req.Method == "" || strings.Contains(host, "%") {
		return req.Write(w)
	}
	if host == "" || strings.ContainsAny(host, " \t\r\n") {
		return &badHostError{host: host}
	}
	_, _ = w.WriteString(req.Method)
	_ = w.WriteByte(' ')
	path := req.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	_, _ = w.WriteString(path)
	if req.URL.ForceQuery || req.URL.RawQuery != "" {
		_ = w.WriteByte('?')
		_, _ = w.WriteString(req.URL.RawQuery)
	}
	_, _ = w.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = w.WriteString(host)
	_, _ = w.WriteString("\r\n")
	ua, hasUA := req.Header["User-Agent"]
	switch {
	case !hasUA:
		_, _ = w.WriteString("User-Agent: Go-http-client/1.1\r\n")
	case len(ua) > 0 && strings.TrimSpace(ua[0]) != "":
		writeField(w, "User-Agent", strings.TrimSpace(ua[0]))
	}
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		_, _ = w.WriteString("Content-Length: 0\r\n")
	}
	if req.Close {
		_, _ = w.WriteString("Connection: close\r\n")
	}
	for name, vals := range req.Header {
		switch name {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vals {
			writeField(w, name, strings.TrimSpace(v))
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

// writeField writes one header line; CR and LF in the value become spaces,
// as in http.Header.Write.
func writeField(w *bufio.Writer, name, value string) {
	_, _ = w.WriteString(name)
	_, _ = w.WriteString(": ")
	if strings.ContainsAny(value, "\r\n") {
		value = strings.NewReplacer("\r", " ", "\n", " ").Replace(value)
	}
	_, _ = w.WriteString(value)
	_, _ = w.WriteString("\r\n")
}

// badHostError is a request whose Host cannot be written.
type badHostError struct{ host string }

func (e *badHostError) Error() string { return "proxy: invalid Host header " + `"` + e.host + `"` }
