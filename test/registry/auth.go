package registry

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
)

func tlsServerConfig(st *serverTLS) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{st.cert}}
}

// authorize checks the request's credentials and writes the 401 challenge
// if they are missing or wrong. It reports whether to go on.
func (r *Registry) authorize(w http.ResponseWriter, req *http.Request, rt route) bool {
	switch {
	case r.cfg.bearer:
		return r.authorizeBearer(w, req, rt)
	case r.cfg.basicUser != "" || r.cfg.basicPass != "":
		user, pass, ok := req.BasicAuth()
		if ok && credentialsMatch(user, pass, r.cfg.basicUser, r.cfg.basicPass) {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="berth-test-registry"`)
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return false
	}
	return true
}

// actions are the token actions a request needs.
func actions(method string) []string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return []string{"pull"}
	case http.MethodDelete:
		return []string{"delete"}
	}
	return []string{"pull", "push"}
}

// authorizeBearer accepts a valid token that grants the request's scope and
// otherwise challenges with the realm, service and scope to ask for.
func (r *Registry) authorizeBearer(w http.ResponseWriter, req *http.Request, rt route) bool {
	need := actions(req.Method)
	challenge := fmt.Sprintf(`Bearer realm=%q,service=%q`, r.TokenURL(), TokenService)
	if rt.repo != "" {
		challenge += fmt.Sprintf(`,scope="repository:%s:%s"`, rt.repo, strings.Join(need, ","))
	}
	if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
		c, err := r.tokens.verify(tok)
		if err == nil && (rt.repo == "" || c.allows(rt.repo, need)) {
			return true
		}
		if err == nil {
			challenge += `,error="insufficient_scope"`
		} else {
			challenge += `,error="invalid_token"`
		}
	}
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
	return false
}
