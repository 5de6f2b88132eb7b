package admin

import (
	"embed"
	"net/http"
	"strings"
)

// ui holds the status page: ui/index.html, ui/style.css, ui/app.js and
// ui/favicon.svg. They are plain files, edited by hand: no build step, no
// external resource.
//
//go:embed ui
var ui embed.FS

// contentSecurityPolicy allows the page only its own files and same-origin
// API calls.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// The page may be opened with ?token=...: never pass it on.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// serveIndex serves the status page at "/".
func serveIndex(w http.ResponseWriter, _ *http.Request) {
	page, err := ui.ReadFile("ui/index.html")
	if err != nil { // cannot happen: the file is embedded
		http.Error(w, "status page missing", http.StatusInternalServerError)
		return
	}
	setPageHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(page)
}

// uiFiles serves the page's static files under /ui/, without directory
// listings.
func uiFiles() http.Handler {
	files := http.FileServerFS(ui)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		setPageHeaders(w.Header())
		files.ServeHTTP(w, r)
	})
}
