package registry

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Token auth follows the Docker registry token flow: a registry answers an
// unauthenticated request with 401 and
//
//	WWW-Authenticate: Bearer realm="<token server>/token",service="berth-test-registry",scope="repository:NAME:pull"
//
// the client asks the token server (GET with Basic credentials, or the OAuth2
// POST form with grant_type=password) and retries with "Authorization: Bearer
// <token>". Tokens are ES256 JWTs in the form docker-registry's token auth
// verifies: claims iss/sub/aud/exp/nbf/iat/jti/access, header x5c carrying
// the signing certificate, which chains to the bundle TokenService writes.
const (
	// TokenService is the service name in challenges and the token audience.
	TokenService = "berth-test-registry"
	// TokenIssuer is the iss claim of every token.
	TokenIssuer = "berth-test-token-issuer"
	// tokenTTL is how long a token is valid (docker-registry adds 60s leeway).
	tokenTTL = 5 * time.Minute
)

// access is one entry of a token's access claim.
type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type claims struct {
	Issuer     string    `json:"iss"`
	Subject    string    `json:"sub"`
	Audience   string    `json:"aud"`
	Expiration int64     `json:"exp"`
	NotBefore  int64     `json:"nbf"`
	IssuedAt   int64     `json:"iat"`
	JWTID      string    `json:"jti"`
	Access     []*access `json:"access"`
}

// allows reports whether the claims grant every action on repository name.
func (c *claims) allows(name string, actions []string) bool {
	for _, want := range actions {
		ok := false
		for _, a := range c.Access {
			if a.Type == "repository" && a.Name == name && (contains(a.Actions, want) || contains(a.Actions, "*")) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// tokenServer issues tokens to one user. It is an http.Handler for /token.
type tokenServer struct {
	user, password string
	key            *ecdsa.PrivateKey
	cert           []byte // DER of the signing certificate (x5c)
	rootPEM        []byte // the signing CA, for docker-registry's rootcertbundle

	mu       sync.Mutex
	requests int // token requests, good or bad
	issued   int // tokens issued
}

func newTokenServer(user, password string) (*tokenServer, error) {
	ca, err := newAuthority("berth test token CA")
	if err != nil {
		return nil, err
	}
	der, key, err := ca.issue(&x509.Certificate{
		Subject:  pkix.Name{CommonName: TokenIssuer},
		KeyUsage: x509.KeyUsageDigitalSignature,
	})
	if err != nil {
		return nil, err
	}
	return &tokenServer{
		user:     user,
		password: password,
		key:      key,
		cert:     der,
		rootPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der}),
	}, nil
}

func (ts *tokenServer) counts() (requests, issued int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.requests, ts.issued
}

// ServeHTTP answers GET /token?service=...&scope=... with Basic credentials
// and POST /token with an OAuth2 password (or refresh_token) grant.
func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	ts.requests++
	ts.mu.Unlock()

	var user, pass string
	var ok bool
	switch r.Method {
	case http.MethodGet:
		user, pass, ok = r.BasicAuth()
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		switch r.PostForm.Get("grant_type") {
		case "password":
			user, pass, ok = r.PostForm.Get("username"), r.PostForm.Get("password"), true
		case "refresh_token":
			// Refresh tokens are the password itself; good enough for a test.
			user, pass, ok = ts.user, r.PostForm.Get("refresh_token"), true
		}
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	anonymous := ts.user == "" && ts.password == ""
	if anonymous && user == "" {
		user = "anonymous"
	}
	if !anonymous && (!ok || !credentialsMatch(user, pass, ts.user, ts.password)) {
		w.Header().Set("WWW-Authenticate", `Basic realm="berth-test-token"`)
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "bad credentials for token")
		return
	}
	if svc := r.FormValue("service"); svc != "" && svc != TokenService {
		writeError(w, http.StatusBadRequest, "DENIED", "unknown service "+svc)
		return
	}
	var grants []*access
	for _, scope := range r.Form["scope"] {
		for _, s := range strings.Fields(scope) {
			if a := parseScope(s); a != nil {
				grants = append(grants, a)
			}
		}
	}
	tok, err := ts.issue(user, grants)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	ts.mu.Lock()
	ts.issued++
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token":         tok,
		"access_token":  tok,
		"refresh_token": ts.password,
		"expires_in":    int(tokenTTL / time.Second),
		"issued_at":     time.Now().UTC().Format(time.RFC3339),
	})
}

// parseScope parses "repository:NAME:pull,push" (or "registry:catalog:*").
func parseScope(s string) *access {
	first, last := strings.Index(s, ":"), strings.LastIndex(s, ":")
	if first < 0 || first == last {
		return nil
	}
	return &access{Type: s[:first], Name: s[first+1 : last], Actions: strings.Split(s[last+1:], ",")}
}

func credentialsMatch(user, pass, wantUser, wantPass string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(wantUser))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(wantPass))
	return u&p == 1
}

var b64 = base64.RawURLEncoding

// issue signs a JWT for subject with the given access.
func (ts *tokenServer) issue(subject string, grants []*access) (string, error) {
	now := time.Now()
	jti := make([]byte, 12)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	if grants == nil {
		grants = []*access{}
	}
	header, err := json.Marshal(map[string]any{
		"typ": "JWT",
		"alg": "ES256",
		"x5c": []string{base64.StdEncoding.EncodeToString(ts.cert)},
	})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(claims{
		Issuer:     TokenIssuer,
		Subject:    subject,
		Audience:   TokenService,
		Expiration: now.Add(tokenTTL).Unix(),
		NotBefore:  now.Add(-time.Second).Unix(),
		IssuedAt:   now.Unix(),
		JWTID:      b64.EncodeToString(jti),
		Access:     grants,
	})
	if err != nil {
		return "", err
	}
	signed := b64.EncodeToString(header) + "." + b64.EncodeToString(body)
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	// JWS ES256 signatures are R || S, each left-padded to 32 bytes.
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + b64.EncodeToString(sig), nil
}

var errBadToken = errors.New("invalid token")

// verify checks a token's signature, audience, issuer and lifetime.
func (ts *tokenServer) verify(tok string) (*claims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errBadToken
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, errBadToken
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(&ts.key.PublicKey, sum[:], r, s) {
		return nil, errBadToken
	}
	raw, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, errBadToken
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, errBadToken
	}
	now := time.Now().Unix()
	if c.Issuer != TokenIssuer || c.Audience != TokenService || now > c.Expiration || now < c.NotBefore-60 {
		return nil, errBadToken
	}
	return &c, nil
}
