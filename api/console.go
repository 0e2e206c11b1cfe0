package api

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// The operations console: static files embedded in the binary.
//
//go:embed web
var webFS embed.FS

var webRoot, _ = fs.Sub(webFS, "web")

// console serves the console's files: "/" is its page, "/console/..." its
// scripts and styles.
func (s *Server) console(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/console/")
	if r.URL.Path == "/" {
		name = "index.html"
	}
	serveWebFile(w, r, name)
}

// sharePage serves the page a share's recipient opens (/share/<id>): no
// sign-in; it asks for the one-time code and talks to /api/v1/shared/<id>.
// It is the same page for every id, known or not.
func (s *Server) sharePage(w http.ResponseWriter, r *http.Request) {
	serveWebFile(w, r, "share.html")
}

func serveWebFile(w http.ResponseWriter, r *http.Request, name string) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; media-src 'self' blob:; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.ServeFileFS(w, r, webRoot, name)
}
