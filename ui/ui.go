// Package ui is kvflow's web UI: static HTML, CSS and JavaScript modules,
// embedded in the binary, that call the REST API under /api/v1.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Prefix is where the UI lives; Handler also accepts paths with it stripped.
const Prefix = "/ui/"

// csp keeps every script, style and request on this origin.
const csp = "default-src 'self'; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"

type file struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the UI's files under /ui/. Every file is revalidated by ETag,
// so a new binary never leaves an old script in the browser's cache.
func Handler() http.Handler {
	files := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = http.DetectContentType(b)
		}
		name := strings.TrimPrefix(p, "static/")
		files[name] = file{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic("ui: reading embedded files: " + err.Error()) // the embed is fixed at build time
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "Method not allowed: the UI only answers GET and HEAD.", http.StatusMethodNotAllowed)
			return
		}
		p := r.URL.Path
		if p == "/ui" {
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
			return
		}
		name := strings.TrimPrefix(strings.TrimPrefix(p, "/ui"), "/")
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			http.Error(w, "Not found: the UI has no file "+path.Clean("/"+name)+".", http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", csp)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	})
}
