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
	w.Header().Set("Content-Security-Policy", "default-src 'self'; media-src 'self' blob:; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.ServeFileFS(w, r, webRoot, name)
}

type signInJSON struct {
	Token string `json:"token"`
}

// signIn checks a token and sets the console's session cookie.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	var in signInJSON
	if err := readJSON(w, r, &in); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.adminToken(in.Token) {
		s.o.Log.Warn("denied: console sign-in with a wrong token", "remote", r.RemoteAddr)
		s.metrics.denied.Inc()
		writeError(w, http.StatusUnauthorized, "wrong token")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: in.Token, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600})
	s.o.Log.Info("console sign-in", "user", "admin", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"user": "admin", "role": "admin"})
}

func (s *Server) whoAmI(w http.ResponseWriter, r *http.Request) {
	role := "supervisor"
	if isAdmin(r) {
		role = "admin"
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": userOf(r), "role": role})
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	w.WriteHeader(http.StatusNoContent)
}
